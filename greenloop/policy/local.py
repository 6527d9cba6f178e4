"""A policy from a model on disk, sampled in batches on CPU or GPU.

`local:PATH` names one of:

- a greenloop causal model folder (`gpt`, or `hrm` with causal=True) as the trainer saves it
  (`best/`, `final/`: model and tokenizer together). It is prompted exactly as training and
  `greenloop sample` prompt it: `<|bos|> prompt <|sep|>`, then generation until `<|eos|>`;
- a transformers causal LM folder (`AutoModelForCausalLM` + `AutoTokenizer`), the prompt
  encoded with the tokenizer's own special tokens. With `chat=True` each prompt becomes a
  user message (after `system`, if given) rendered by the tokenizer's chat template;
- a GGUF file, or a folder holding one (`gguf_file=NAME` picks it when there are several):
  transformers dequantises it on load, which needs the `gguf` package.

Completions are the generated text only. Prompts of different lengths share a batch by left
padding (the models' position ids follow the attention mask). Sampling is seeded: a policy
made with `seed=S` draws the same samples for the same sequence of calls, and a call's own
`seed=` fixes that call alone. A completion ends at an end-of-sequence token, at the first
of the `stop` strings (cut before it), or after `max_tokens` tokens.

torch and transformers are imported when a policy is made, not when this module is.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from greenloop.policy import (
    FINISH_LENGTH,
    FINISH_STOP,
    BasePolicy,
    Generation,
    TokenUsage,
    check_generate_arguments,
    check_sampling_config,
    config_from_options,
)

GREENLOOP_CAUSAL_TYPES = ("greenloop_gpt", "greenloop_hrm")
Messages = Sequence[dict[str, str]]  # [{"role": "user", "content": "..."}, ...]


@dataclass(frozen=True)
class LocalPolicyConfig:
    path: str
    device: str = "auto"           # "auto": cuda when available, else cpu; or "cpu", "cuda:1", ...
    dtype: str | None = None       # torch dtype name ("bfloat16", "float16"); None: as saved
    gguf_file: str | None = None   # a .gguf file inside `path`
    chat: bool = False             # render prompts with the tokenizer's chat template
    system: str | None = None      # with chat: a system message before each prompt
    top_p: float = 1.0             # nucleus sampling when temperature > 0; a call's top_p overrides
    seed: int = 0                  # seeds this policy's stream of samples
    stop: tuple[str, ...] = ()     # strings that end a completion; a call's stop overrides
    batch_size: int = 16           # sequences (prompts x samples) per generate() call
    name: str | None = None        # reported in Policy.name; default: the folder's name

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be at least 1")
        check_sampling_config(self)


def load_local_policy(path: str, **options: Any) -> LocalPolicy:
    """`local:PATH`: options are `LocalPolicyConfig` fields."""
    return LocalPolicy(config_from_options(LocalPolicyConfig, "local", "path", str(path), options))


def resolve_model_path(path: str, gguf_file: str | None) -> tuple[Path, str | None]:
    """The model folder and GGUF file name `path` (a folder or a .gguf file) stands for;
    errors name the path and what is missing."""
    given = Path(path).expanduser()
    if given.is_file() and given.suffix == ".gguf":
        return given.parent, given.name
    if not given.exists():
        raise FileNotFoundError(f"local policy {path}: no such model folder")
    if not given.is_dir():
        raise ValueError(f"local policy {path}: not a model folder or a .gguf file")
    if gguf_file is None and not (given / "config.json").is_file():
        found = sorted(p.name for p in given.glob("*.gguf"))
        if len(found) > 1:
            raise ValueError(f"local policy {path}: several .gguf files ({', '.join(found)}); pick one with gguf_file=")
        gguf_file = found[0] if found else None
    if gguf_file is not None and not (given / gguf_file).is_file():
        raise FileNotFoundError(f"local policy {path}: no GGUF file {gguf_file} in it")
    if gguf_file is None and not (given / "config.json").is_file():
        raise FileNotFoundError(f"local policy {path}: no config.json and no .gguf file; is it a saved model folder?")
    return given, gguf_file


class _GreenloopCodec:
    """greenloop's models: `<|bos|> prompt <|sep|>` in, text until `<|eos|>` out."""

    chat_template = False

    def __init__(self, folder: Path):
        from greenloop.text.tokenizer import EOS_ID, PAD_ID, load_tokenizer

        self.tokenizer = load_tokenizer(folder)
        self.eos_ids, self.pad_id = {EOS_ID}, PAD_ID

    def encode(self, text: str) -> list[int]:
        from greenloop.text.tokenizer import BOS_ID, SEP_ID

        return [BOS_ID, *self.tokenizer.encode(text).ids, SEP_ID]

    def encode_chat(self, messages: Messages) -> list[int]:
        raise ValueError("greenloop's tokenizers have no chat template")

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class _TransformersCodec:
    """A transformers tokenizer: its own special tokens, and its chat template if it has one."""

    def __init__(self, tokenizer, model):
        self.tokenizer = tokenizer
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        if not eos:
            raise ValueError("the model has no end-of-sequence token (generation_config or tokenizer)")
        self.eos_ids = set(eos)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
        self.chat_template = bool(getattr(tokenizer, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def encode_chat(self, messages: Messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _torch_dtype(name: str | None):
    import torch

    dtype = getattr(torch, name, None) if name else None
    if name and not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype {name!r}: not a torch dtype (float32, bfloat16, float16, ...)")
    return dtype


def _load_model_and_codec(folder: Path, gguf_file: str | None, dtype: str | None):
    extra: dict[str, Any] = {"dtype": _torch_dtype(dtype)} if dtype else {}
    model_type = None
    if gguf_file is None:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type == "greenloop_trm":
        raise ValueError(f"local policy {folder}: a TRM repair model (grid to grid), not a causal language model; "
                         "policies need a gpt or hrm folder")
    if model_type in GREENLOOP_CAUSAL_TYPES:
        from greenloop.models import load_model

        model = load_model(folder, **extra)
        if model_type == "greenloop_hrm" and not model.config.causal:
            raise ValueError(f"local policy {folder}: an HRM with causal=False cannot generate")
        return model, _GreenloopCodec(folder)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **gguf)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **gguf, **extra)
    return model, _TransformersCodec(tokenizer, model)


class _StopStrings:
    """A stopping criterion: a row is done once its generated text holds a stop string.
    Only the last few tokens are decoded; the final cut is made on the whole text."""

    def __init__(self, stop: Sequence[str], prompt_width: int, decode):
        self.stop, self.prompt_width, self.decode = tuple(stop), prompt_width, decode
        self.window = max(len(s) for s in stop) + 4  # a token is at least a byte of text

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        start = max(self.prompt_width, input_ids.shape[1] - self.window)
        tails = [self.decode(row) for row in input_ids[:, start:].tolist()]
        return torch.tensor([any(s in tail for s in self.stop) for tail in tails], device=input_ids.device)


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


class LocalPolicy(BasePolicy):
    def __init__(self, config: LocalPolicyConfig):
        super().__init__()
        folder, gguf_file = resolve_model_path(config.path, config.gguf_file)  # before torch: errors come fast
        import torch

        model, self.codec = _load_model_and_codec(folder, gguf_file, config.dtype)
        if config.chat and not self.codec.chat_template:
            raise ValueError(f"local policy {config.path}: chat=True, but its tokenizer has no chat template")
        if config.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(config.device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = config.name or (Path(gguf_file).stem if gguf_file else folder.resolve().name)
        self._generator = torch.Generator().manual_seed(config.seed)
        self._lock = threading.Lock()  # one generation at a time: the model and torch's RNG are shared

    def generate_with_usage(self, prompts: list[str], n: int = 1, temperature: float = 0.0,
                            max_tokens: int = 256, *, top_p: float | None = None,
                            stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """n completions per prompt; `top_p`, `stop` and `seed` default to the policy's."""
        check_generate_arguments(prompts, n, temperature, max_tokens, top_p)
        if self.config.chat:
            system = [{"role": "system", "content": self.config.system}] if self.config.system else []
            encoded = [self.codec.encode_chat([*system, {"role": "user", "content": p}]) for p in prompts]
        else:
            encoded = [self.codec.encode(p) for p in prompts]
        return self.generate_from_ids(encoded, n, temperature, max_tokens, top_p=top_p, stop=stop, seed=seed)

    def generate_chat(self, conversations: Sequence[Messages], n: int = 1, temperature: float = 0.0,
                      max_tokens: int = 256, *, top_p: float | None = None,
                      stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """n replies per conversation (a list of {"role", "content"} messages). Without a chat
        template the messages' contents, joined by blank lines, are the prompt."""
        check_generate_arguments([], n, temperature, max_tokens, top_p)
        encoded = [self.codec.encode_chat(messages) if self.codec.chat_template
                   else self.codec.encode("\n\n".join(m["content"] for m in messages)) for messages in conversations]
        return self.generate_from_ids(encoded, n, temperature, max_tokens, top_p=top_p, stop=stop, seed=seed)

    def generate_from_ids(self, encoded: list[list[int]], n: int, temperature: float, max_tokens: int, *,
                          top_p: float | None = None, stop: Sequence[str] | None = None,
                          seed: int | None = None) -> Generation:
        """n completions per already-encoded prompt; greedy decoding runs each prompt once."""
        import torch

        stop = tuple(self.config.stop if stop is None else [stop] if isinstance(stop, str) else stop)
        top_p = self.config.top_p if top_p is None else top_p
        copies = 1 if temperature == 0 else n  # greedy samples are all the same: compute one
        rows = [ids for ids in encoded for _ in range(copies)]
        samples: list[tuple[str, str, int]] = []
        usage = TokenUsage(prompt_tokens=sum(len(ids) for ids in encoded))
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=cuda):
            call_seed = seed if seed is not None else int(torch.randint(0, 2**62, (1,), generator=self._generator))
            torch.manual_seed(call_seed)
            for start in range(0, len(rows), self.config.batch_size):
                samples += self._generate_batch(rows[start:start + self.config.batch_size], temperature,
                                                max_tokens, top_p, stop)
                usage.requests += 1
        per_prompt = [samples[i * copies:(i + 1) * copies] * (n // copies) for i in range(len(encoded))]
        usage.completion_tokens = sum(count for group in per_prompt for _, _, count in group)
        self._record(usage)
        return Generation(texts=[[text for text, _, _ in group] for group in per_prompt],
                          finish_reasons=[[finish for _, finish, _ in group] for group in per_prompt],
                          prompt_tokens=[len(ids) for ids in encoded],
                          completion_tokens=[sum(count for _, _, count in group) for group in per_prompt],
                          usage=usage)

    def _generate_batch(self, rows: list[list[int]], temperature: float, max_tokens: int, top_p: float,
                        stop: tuple[str, ...]) -> list[tuple[str, str, int]]:
        import torch

        width = max(len(ids) for ids in rows)
        pad = self.codec.pad_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=self.device)
        greedy = temperature == 0
        options: dict[str, Any] = dict(max_new_tokens=max_tokens, do_sample=not greedy, pad_token_id=pad,
                                       eos_token_id=sorted(self.codec.eos_ids),
                                       temperature=None if greedy else temperature, top_p=None if greedy else top_p)
        if stop:
            options["stopping_criteria"] = [_StopStrings(stop, width, self.codec.decode)]
        with torch.no_grad():
            out = self.model.generate(input_ids, attention_mask=mask, **options)
        return [self._finish(row, stop) for row in out[:, width:].tolist()]

    def _finish(self, row: list[int], stop: tuple[str, ...]) -> tuple[str, str, int]:
        """(text, finish reason, tokens generated) of one generated row."""
        ends = [i for i, token in enumerate(row) if token in self.codec.eos_ids]
        if ends:
            tokens, count, finish = row[:ends[0]], ends[0] + 1, FINISH_STOP
        else:
            tokens, finish = list(row), FINISH_LENGTH
            while tokens and tokens[-1] == self.codec.pad_id:  # a row a stop string ended early
                tokens.pop()
            count = len(tokens)
        text, stopped = _cut_at_stop(self.codec.decode(tokens), stop)
        return text, FINISH_STOP if stopped else finish, count
