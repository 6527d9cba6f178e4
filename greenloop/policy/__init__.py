"""Policies: anything that writes code for a prompt.

A policy takes prompts and returns completions, `n` per prompt:

    policy = load_policy("local:runs/gpt/best")            # a greenloop or transformers folder
    policy = load_policy("openai:gpt-4o-mini", chat=True)  # any OpenAI-compatible server
    texts = policy.generate(["def add(a, b):\\n"], n=4, temperature=0.8, max_tokens=128)
    # texts[0] is a list of 4 completions (the generated text only, never the prompt)

Token counts: `generate_with_usage(...)` returns a `Generation`: the texts, each sample's
finish reason ("stop": an end token or stop string; "length": max_tokens reached), and
the prompt and completion tokens of each prompt. `policy.usage` is a running `TokenUsage`
over every call (tokens, requests sent, cache hits, retries), so a caller that only uses
`generate` can still read what a run cost.

Backends (the `policies` registry; others come from the `greenloop.policies` entry point
group, each a callable `(target: str, **options) -> Policy`):

    local:PATH     greenloop.policy.local           a greenloop gpt/hrm folder (as the trainer
                                                    saves it), a transformers causal LM folder,
                                                    or a .gguf file (needs `gguf`); torch
    openai:MODEL   greenloop.policy.openai_backend  the `openai` client against any
                                                    OpenAI-compatible server (vLLM, Ollama,
                                                    llama.cpp, `greenloop serve-model`, hosted
                                                    APIs), with retries, a concurrency limit
                                                    and an on-disk response cache

For `openai:`, the server is the `base_url` option, else $GREENLOOP_OPENAI_BASE_URL, else
OpenAI's API; the key is the `api_key` option, else $OPENAI_API_KEY (a server on a custom
base URL needs none). Variables are read when the policy is made, never at import.

Nothing heavy is imported here: the backends load on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from greenloop.registry import Registry

BASE_URL_ENV, API_KEY_ENV = "GREENLOOP_OPENAI_BASE_URL", "OPENAI_API_KEY"
FINISH_STOP, FINISH_LENGTH = "stop", "length"  # OpenAI's wire values; servers may send others


class PolicyError(RuntimeError):
    """A policy could not produce completions: the server refused, or retries ran out."""


@dataclass
class TokenUsage:
    """What calls to a policy cost. Tokens count every completion returned, cached or not;
    `requests` counts calls that produced new completions (HTTP requests for a server,
    generate() batches for a local model), `cache_hits` the requests answered from disk,
    `retries` the failed attempts that were tried again."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: TokenUsage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests
        self.cache_hits += other.cache_hits
        self.retries += other.retries

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "requests": self.requests,
                "cache_hits": self.cache_hits, "retries": self.retries}


@dataclass(frozen=True)
class Generation:
    """The result of one `generate_with_usage` call; every list has one entry per prompt."""

    texts: list[list[str]]            # n completions per prompt
    finish_reasons: list[list[str]]   # per completion: "stop" or "length" (or what a server sent)
    prompt_tokens: list[int]          # per prompt, counted once however large n is
    completion_tokens: list[int]      # per prompt, summed over its n completions
    usage: TokenUsage = field(default_factory=TokenUsage)  # this call's totals and requests


@runtime_checkable
class Policy(Protocol):
    name: str
    usage: TokenUsage

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                 max_tokens: int = 256) -> list[list[str]]: ...

    def generate_with_usage(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                            max_tokens: int = 256, *, top_p: float | None = None,
                            stop: Sequence[str] | None = None, seed: int | None = None) -> Generation: ...


class BasePolicy:
    """What every backend shares: `generate` on top of `generate_with_usage`, argument checks,
    and the running `usage` (updated under a lock: backends may call from threads)."""

    name: str = "policy"

    def __init__(self) -> None:
        self.usage = TokenUsage()
        self._usage_lock = threading.Lock()

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                 max_tokens: int = 256) -> list[list[str]]:
        return self.generate_with_usage(prompts, n, temperature, max_tokens).texts

    def generate_with_usage(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                            max_tokens: int = 256, *, top_p: float | None = None,
                            stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        raise NotImplementedError

    def _record(self, usage: TokenUsage) -> None:
        with self._usage_lock:
            self.usage.add(usage)


def check_generate_arguments(prompts: Sequence[str], n: int, temperature: float, max_tokens: int,
                             top_p: float | None = None) -> None:
    """Raise ValueError naming the argument that no backend could honour."""
    if isinstance(prompts, str):
        raise ValueError("prompts: expected a list of strings, got one string")
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts: every prompt must be a string")
    if n < 1:
        raise ValueError(f"n={n}: must be at least 1")
    if max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}: must be at least 1")
    if temperature < 0:
        raise ValueError(f"temperature={temperature}: must be >= 0 (0 is greedy)")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p}: must be in (0, 1]")


def check_sampling_config(config) -> None:
    """What a local and an OpenAI policy config share: `top_p` in (0, 1], `stop` as a tuple
    (one string allowed), `system` only with `chat`. Call from `__post_init__`."""
    if not 0 < config.top_p <= 1:
        raise ValueError(f"top_p={config.top_p}: must be in (0, 1]")
    object.__setattr__(config, "stop", (config.stop,) if isinstance(config.stop, str) else tuple(config.stop))
    if config.system is not None and not config.chat:
        raise ValueError("system: only used with chat=True")


def config_from_options(config_class, backend: str, target_field: str, target: str, options: dict):
    """`config_class(target_field=target, **options)`; unknown options are refused by name."""
    from dataclasses import fields

    known = {f.name for f in fields(config_class)} - {target_field}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{backend} policy: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return config_class(**{target_field: target}, **options)


policies: Registry = Registry("policy", entry_point_group="greenloop.policies")
policies.register_lazy("local", "greenloop.policy.local:load_local_policy")
policies.register_lazy("openai", "greenloop.policy.openai_backend:load_openai_policy")


def load_policy(spec: str, **options) -> Policy:
    """The policy a spec names: `BACKEND:TARGET`, e.g. `local:PATH` or `openai:MODEL`.
    `options` go to the backend (see its `load_*_policy`); unknown backends raise with
    suggestions."""
    backend, sep, target = spec.partition(":")
    if not sep or not backend or not target:
        raise ValueError(f"policy {spec!r}: expected BACKEND:TARGET, e.g. local:PATH or openai:MODEL "
                         f"(backends: {', '.join(policies.names())})")
    return policies.get(backend)(target, **options)


__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "BasePolicy",
    "Generation",
    "Policy",
    "PolicyError",
    "TokenUsage",
    "check_generate_arguments",
    "load_policy",
    "policies",
]
