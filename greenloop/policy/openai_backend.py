"""A policy served by any OpenAI-compatible server, through the official `openai` client.

`openai:MODEL` talks to vLLM, Ollama, llama.cpp, `greenloop serve-model` or a hosted API:

- server: the `base_url` option, else $GREENLOOP_OPENAI_BASE_URL, else OpenAI's API; key: the
  `api_key` option, else $OPENAI_API_KEY (a custom base URL without a key sends "EMPTY", which
  local servers accept). Read when the policy is made.
- mode: completions (`/v1/completions`, the prompt continued) or, with `chat=True`,
  `/v1/chat/completions` (each prompt one user message, after `system` if given).
- retries: rate limits (429), 408, 409, server errors (5xx) and connection errors and
  timeouts are tried again up to `max_retries` times, waiting `backoff_s * 2**attempt`
  (capped at `backoff_max_s`, or the server's Retry-After) times a random factor in
  [0.5, 1]. This loop is ours, the client's own is off (`max_retries=0`), so every retry is
  counted in `usage.retries` and logged. Other refusals (400, 401, 404, ...) raise at once.
- concurrency: prompts go out on at most `max_concurrency` threads, one request at a time
  each, so no more than `max_concurrency` requests are in flight.
- n: asked of the server in one request; a server that refuses n > 1 (400/422) or returns
  fewer choices is sent single requests for the rest (with `seed`, sample i gets seed + i,
  so they differ), and is not asked for n > 1 again.
- cache: every response is kept on disk, one JSON file per request under `cache_dir`
  (default `openai/` in greenloop's cache: `greenloop.io.cache_root`), named by the
  sha256 of the whole request: base URL, model, mode, prompt or messages, n, temperature,
  max_tokens, top_p, stop and seed. A rerun of the same requests sends nothing, sampled
  ones (temperature > 0) included: a rerun is meant to be free and to reproduce. For fresh
  samples of the same prompt change `seed`, or pass `cache=False`. Files are written
  atomically (a temporary file renamed), so a killed run never leaves half an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from greenloop.policy import (
    API_KEY_ENV,
    BASE_URL_ENV,
    BasePolicy,
    Generation,
    PolicyError,
    TokenUsage,
    check_generate_arguments,
    check_sampling_config,
    config_from_options,
)

log = logging.getLogger(__name__)
RETRYABLE_STATUS = (408, 409, 429)  # and every 5xx
NO_KEY = "EMPTY"  # what local OpenAI-compatible servers take as "no key"


class RequestRefused(PolicyError):
    """The server answered with a status that retrying will not change (400, 401, 404, ...)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class OpenAIPolicyConfig:
    model: str
    base_url: str | None = None   # None: $GREENLOOP_OPENAI_BASE_URL, else OpenAI's API
    api_key: str | None = None    # None: $OPENAI_API_KEY, else "EMPTY" for a custom base_url
    chat: bool = False            # /v1/chat/completions instead of /v1/completions
    system: str | None = None     # with chat: a system message before each prompt
    top_p: float = 1.0            # a call's top_p overrides
    seed: int | None = None       # sent when set; a call's seed overrides
    stop: tuple[str, ...] = ()    # stop strings sent with every request; a call's stop overrides
    max_retries: int = 6          # retries after the first attempt (429, 408, 409, 5xx, connection)
    backoff_s: float = 0.5        # the first retry's wait, doubled each retry
    backoff_max_s: float = 30.0   # the longest wait between attempts
    timeout_s: float = 300.0      # per request
    max_concurrency: int = 8      # requests in flight at once
    cache: bool = True            # answer repeated requests from cache_dir
    cache_dir: str | None = None  # None: openai/ in greenloop's cache (greenloop.io.cache_root)
    name: str | None = None       # Policy.name; default: the model

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("openai policy: the model name is empty")
        if self.max_retries < 0 or self.max_concurrency < 1:
            raise ValueError("max_retries must be >= 0 and max_concurrency >= 1")
        if self.backoff_s < 0 or self.backoff_max_s < 0 or self.timeout_s <= 0:
            raise ValueError("backoff_s and backoff_max_s must be >= 0, timeout_s > 0")
        check_sampling_config(self)


def load_openai_policy(model: str, **options: Any) -> OpenAIPolicy:
    """`openai:MODEL`: options are `OpenAIPolicyConfig` fields."""
    return OpenAIPolicy(config_from_options(OpenAIPolicyConfig, "openai", "model", model, options))


def default_cache_dir() -> Path:
    from greenloop.io import cache_root

    return Path(cache_root()) / "openai"


class ResponseCache:
    """One JSON file per request, `ROOT/ab/abcdef....json`, holding the request and the response."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        try:
            return json.loads(path.read_text())["response"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:  # edited by hand, say: ask again and overwrite it
            log.warning("%s: unreadable cache entry (%s); asking the server again", path, exc)
            return None

    def write(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".tmp-", suffix=".json", delete=False) as fh:
            json.dump({"request": request, "response": response, "created": time.time()}, fh, ensure_ascii=False)
        os.replace(fh.name, path)


class OpenAIPolicy(BasePolicy):
    def __init__(self, config: OpenAIPolicyConfig):
        super().__init__()
        from openai import OpenAI

        base_url = config.base_url or os.environ.get(BASE_URL_ENV) or None
        api_key = config.api_key or os.environ.get(API_KEY_ENV) or (NO_KEY if base_url else None)
        if api_key is None:
            raise ValueError(f"openai policy {config.model}: no API key; set ${API_KEY_ENV}, pass api_key=, "
                             f"or point base_url (or ${BASE_URL_ENV}) at a server that needs none")
        self.config = config
        self.client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=config.timeout_s)
        self.base_url = str(self.client.base_url).rstrip("/")
        self.name = config.name or config.model
        self.cache = ResponseCache(config.cache_dir or default_cache_dir()) if config.cache else None
        self._server_takes_n = True
        self._random = random.Random()
        self._random_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generate_with_usage(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                            max_tokens: int = 256, *, top_p: float | None = None,
                            stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """n completions per prompt, the prompts sent concurrently; results in prompt order."""
        check_generate_arguments(prompts, n, temperature, max_tokens, top_p)
        stop = self.config.stop if stop is None else (stop,) if isinstance(stop, str) else tuple(stop)
        bodies = [self._body(p, n, temperature, max_tokens, self.config.top_p if top_p is None else top_p,
                             stop, self.config.seed if seed is None else seed) for p in prompts]
        if len(bodies) <= 1:
            results = [self._complete(body) for body in bodies]
        else:
            with ThreadPoolExecutor(max_workers=min(self.config.max_concurrency, len(bodies))) as pool:
                results = list(pool.map(self._complete, bodies))
        usage = TokenUsage()
        for _, one in results:
            usage.add(one)
        self._record(usage)
        records = [record for record, _ in results]
        return Generation(texts=[r["texts"] for r in records], finish_reasons=[r["finish_reasons"] for r in records],
                          prompt_tokens=[r["prompt_tokens"] for r in records],
                          completion_tokens=[r["completion_tokens"] for r in records], usage=usage)

    def _body(self, prompt: str, n: int, temperature: float, max_tokens: int, top_p: float,
              stop: tuple[str, ...], seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "n": n, "temperature": temperature,
                                "max_tokens": max_tokens, "top_p": top_p}
        if self.config.chat:
            system = [{"role": "system", "content": self.config.system}] if self.config.system else []
            body["messages"] = [*system, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        return body

    def _complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], TokenUsage]:
        """One prompt's n completions: from the cache, else from the server (then cached)."""
        request = {"base_url": self.base_url, "mode": "chat" if self.config.chat else "completions", **body}
        key = ResponseCache.key(request)
        record = self.cache.read(key) if self.cache else None
        usage = TokenUsage(cache_hits=int(record is not None))
        if record is None:
            try:
                record = self._ask(body, usage)
            except BaseException:
                self._record(usage)  # the requests and retries of a call that failed still count
                raise
            if self.cache:
                self.cache.write(key, request, record)
        usage.prompt_tokens, usage.completion_tokens = record["prompt_tokens"], record["completion_tokens"]
        return record, usage

    def _ask(self, body: dict[str, Any], usage: TokenUsage) -> dict[str, Any]:
        n = body["n"]
        record: dict[str, Any] = {"texts": [], "finish_reasons": [], "prompt_tokens": 0, "completion_tokens": 0}
        if n > 1 and self._server_takes_n:
            try:
                record = self._send(body, usage)
            except RequestRefused as exc:
                if exc.status_code not in (400, 422):
                    raise
                log.warning("%s refused n=%d (%s); sending single requests", self.base_url, n, exc)
                self._server_takes_n = False
        while len(record["texts"]) < n:  # n refused, n == 1, or fewer choices than asked for
            single = {**body, "n": 1}
            if "seed" in body:
                single["seed"] = body["seed"] + len(record["texts"])
            one = self._send(single, usage)
            for field in ("texts", "finish_reasons"):
                record[field] = record[field] + one[field]
            record["prompt_tokens"] = record["prompt_tokens"] or one["prompt_tokens"]  # the same prompt each time
            record["completion_tokens"] += one["completion_tokens"]
        record["texts"], record["finish_reasons"] = record["texts"][:n], record["finish_reasons"][:n]
        return record

    def _send(self, body: dict[str, Any], usage: TokenUsage) -> dict[str, Any]:
        """One request, retried on rate limits, server errors and lost connections."""
        from openai import APIConnectionError, APIStatusError

        create = self.client.chat.completions.create if self.config.chat else self.client.completions.create
        attempt = 0
        while True:
            try:
                response = create(**body)
                usage.requests += 1
                return self._parse(response)
            except (APIConnectionError, APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                if status is not None and status not in RETRYABLE_STATUS and status < 500:
                    raise RequestRefused(f"{self.base_url} refused {self.config.model} ({status}): {exc}",
                                         status) from exc
                if attempt >= self.config.max_retries:
                    raise PolicyError(f"{self.base_url} {self.config.model}: gave up after {attempt + 1} "
                                      f"attempts; last: {status or 'connection error'}: {exc}") from exc
                wait = self._backoff(attempt, exc)
                log.warning("%s: %s; retry %d/%d in %.2fs", self.base_url, status or "connection error",
                            attempt + 1, self.config.max_retries, wait)
                usage.retries += 1
                attempt += 1
                time.sleep(wait)

    def _backoff(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            if retry_after is not None:
                return min(self.config.backoff_max_s, max(0.0, float(retry_after)))
        except ValueError:
            pass  # an HTTP date: fall back to our own schedule
        with self._random_lock:
            jitter = self._random.uniform(0.5, 1.0)
        return min(self.config.backoff_max_s, self.config.backoff_s * 2 ** attempt) * jitter

    def _parse(self, response) -> dict[str, Any]:
        choices = sorted(response.choices, key=lambda c: c.index)
        if self.config.chat:
            texts = [(c.message.content or "") for c in choices]
        else:
            texts = [c.text or "" for c in choices]
        usage = response.usage
        return {"texts": texts, "finish_reasons": [c.finish_reason or "" for c in choices],
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0}
