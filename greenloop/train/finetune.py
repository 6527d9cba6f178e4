"""Supervised fine-tuning on prompt → completion examples: the sleep phase's trainer.

Two kinds of model folders, told apart by what they hold:
- greenloop's own causal models (`tiny_gpt`, `hrm`, a `greenloop_tokenizer.json` beside
  the weights): full fine-tuning. An example is encoded as training and sampling see it,
  `<|bos|> prompt <|sep|> completion <|eos|>`;
- any transformers causal LM folder: LoRA through PEFT (all linear layers but the head),
  merged into the weights when saved, so every checkpoint is a plain model folder. An
  example is the prompt's tokens then the completion's and the end-of-sequence token.

The loss counts completion tokens only, unless `prompt_weight` > 0: then the prompt's
tokens are predicted too, their mean loss added at that weight to the completion's. For
the edit format this is cheap teaching: the prompt's tokens are computed anyway, and
they are mostly code, with the parser's line repeated at the end, a copy to predict.

Batches are drawn in a seeded order, grouped by length to waste little padding; the
learning rate warms up then follows a cosine. An example longer than `max_len` is
skipped and counted, never cut (a truncated program would teach the model to stop
halfway).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

IGNORE = -100


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 10
    weight_decay: float = 0.0
    clip: float = 1.0
    max_len: int = 768
    seed: int = 0
    lora_rank: int = 16  # transformers models only
    chat: bool = False   # transformers models: the prompt as a user message in the chat template (as policies ask)
    prompt_weight: float = 0.0  # weight of the prompt tokens' mean loss beside the completion's (0: not counted)

    def __post_init__(self):
        for name, value, least in (("steps", self.steps, 1), ("batch_size", self.batch_size, 1),
                                   ("max_len", self.max_len, 8)):
            if value < least:
                raise ValueError(f"finetune {name}: must be >= {least}, got {value}")
        if self.lr <= 0:
            raise ValueError(f"finetune lr: must be > 0, got {self.lr}")
        if self.prompt_weight < 0:
            raise ValueError(f"finetune prompt_weight: must be >= 0, got {self.prompt_weight}")


def is_greenloop_model(folder: str | Path) -> bool:
    return (Path(folder) / "greenloop_tokenizer.json").exists()


def _encoder(folder: str | Path, chat: bool = False):
    """(encode(prompt, completion) -> (ids, labels), pad id) for the folder's tokenizer."""
    if is_greenloop_model(folder):
        from greenloop.text.tokenizer import (
            BOS_ID,
            EOS_ID,
            PAD_ID,
            SEP_ID,
            load_tokenizer,
        )

        tok = load_tokenizer(folder)

        def encode(prompt: str, completion: str):
            head = [BOS_ID, *tok.encode(prompt).ids, SEP_ID]
            tail = [*tok.encode(completion).ids, EOS_ID]
            return head + tail, [IGNORE] * len(head) + tail
        return encode, PAD_ID
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)

    def encode(prompt: str, completion: str):
        if chat:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            head = tok(text, add_special_tokens=False)["input_ids"]
        else:
            head = tok(prompt, add_special_tokens=True)["input_ids"]
        tail = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return head + tail, [IGNORE] * len(head) + tail
    return encode, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def _batches(examples: list[tuple[list[int], list[int]]], config: FinetuneConfig):
    """Endless seeded batches; each batch drawn from a length-sorted window of examples."""
    rng = random.Random(config.seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        window = config.batch_size * 8
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda i: len(examples[i][0]))
            groups = [chunk[i:i + config.batch_size] for i in range(0, len(chunk), config.batch_size)]
            rng.shuffle(groups)
            yield from groups


def _tensors(examples, indices, pad_id: int):
    import torch

    width = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        tokens, targets = examples[i]
        ids[row, :len(tokens)] = torch.tensor(tokens)
        labels[row, :len(targets)] = torch.tensor(targets)
        mask[row, :len(tokens)] = 1
    return ids, labels, mask


def _load(folder: str | Path, config: FinetuneConfig):
    if is_greenloop_model(folder):
        from greenloop.models import load_model

        return load_model(folder)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def finetune(model_dir: str | Path, pairs: list[tuple[str, str]], out_dir: str | Path,
             config: FinetuneConfig = FinetuneConfig(), progress: bool = False, desc: str = "sft") -> dict:
    """Train the model in `model_dir` on (prompt, completion) pairs; save it to `out_dir`."""
    import torch
    from tqdm import tqdm

    encode, pad_id = _encoder(model_dir, config.chat)
    encoded = [encode(p, c) for p, c in pairs]
    examples = [e for e in encoded if len(e[0]) <= config.max_len]
    if not examples:
        raise ValueError(f"no example fits max_len {config.max_len} ({len(pairs)} given)")
    torch.manual_seed(config.seed)
    model = _load(model_dir, config).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: _lr_factor(s, config))
    losses, tokens, started = [], 0, time.perf_counter()
    batches = _batches(examples, config)
    for _ in tqdm(range(config.steps), desc=desc, unit="step", disable=not progress):
        ids, labels, mask = _tensors(examples, next(batches), pad_id)
        loss = _loss(model, ids, labels, mask, config.prompt_weight)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        optim.step()
        schedule.step()
        losses.append(loss.item())
        tokens += int(mask.sum())
    seconds = time.perf_counter() - started
    _save(model, model_dir, out_dir)
    tail = losses[-max(1, len(losses) // 10):]
    return {"examples": len(examples), "skipped_too_long": len(pairs) - len(examples), "steps": config.steps,
            "loss_first": losses[0], "loss_last": sum(tail) / len(tail), "seconds": seconds,
            "tokens_per_s": tokens / max(seconds, 1e-9)}


def _loss(model, ids, labels, mask, prompt_weight: float):
    """The completion tokens' mean loss, plus `prompt_weight` times the prompt tokens' mean."""
    if not prompt_weight:
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    import torch.nn.functional as F

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets, answer, real = ids[:, 1:], labels[:, 1:] != IGNORE, mask[:, 1:].bool()
    each = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           reduction="none").view_as(targets)
    prompt = real & ~answer
    return each[answer].mean() + prompt_weight * each[prompt].mean()


def _lr_factor(step: int, config: FinetuneConfig) -> float:
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _save(model, model_dir: str | Path, out_dir: str | Path) -> None:
    """A plain model folder, written atomically (LoRA adapters merged into the weights)."""
    import shutil

    from greenloop.train.checkpoint import replace_dir, save_model_folder

    if not hasattr(model, "merge_and_unload"):
        save_model_folder(model.eval(), Path(out_dir), str(model_dir))
        return
    from transformers import AutoTokenizer

    tmp = Path(str(out_dir) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.merge_and_unload().eval().save_pretrained(tmp)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
    replace_dir(tmp, Path(out_dir))


def init_model_folder(kind: str, tokenizer_dir: str | Path, out_dir: str | Path, seed: int = 0, **model_config) -> Path:
    """A freshly initialised greenloop causal model (`gpt` or `hrm`) saved with its
    tokenizer, ready for `finetune` (supervised training from scratch)."""
    import torch

    from greenloop.models import build_model
    from greenloop.text.tokenizer import load_tokenizer
    from greenloop.train.checkpoint import save_model_folder

    if kind not in ("gpt", "hrm"):
        raise ValueError(f"supervised training from scratch takes gpt or hrm, not {kind!r}")
    torch.manual_seed(seed)
    settings = {"vocab_size": load_tokenizer(tokenizer_dir).get_vocab_size(), **model_config}
    if kind == "hrm":
        settings.setdefault("causal", True)
    save_model_folder(build_model(kind, **settings), Path(out_dir), str(tokenizer_dir))
    return Path(out_dir)


def read_examples(source: str | Path, style: str = "raw") -> list[tuple[str, str]]:
    """(prompt, completion) pairs from a data folder (`greenloop data mutate` and the like),
    `tasks:SPEC` (each task's broken program and its reference: repair tasks, koans), or a
    JSONL file of `prompt`/`completion` records (taken as they are) or `buggy`/`fixed`
    records. Buggy/fixed pairs are put in `style`: `raw` (the buggy program → the fixed
    one) or `edit` (numbered buggy lines → the edit, as the self-improvement loop asks)."""
    from greenloop.io import DataError, read_jsonl
    from greenloop.text.edit_format import edit_of, edit_prompt

    if style not in ("raw", "edit"):
        raise ValueError(f"--format must be raw or edit, got {style!r}")
    shaped = (lambda b, f: (edit_prompt(b), edit_of(b, f))) if style == "edit" else (lambda b, f: (b, f))
    if str(source).startswith("tasks:"):  # repair tasks and koans: the broken program -> the reference
        from greenloop.tasks import load_tasks

        tasks = load_tasks(str(source)[len("tasks:"):]).tasks.values()
        missing = [t.task_id for t in tasks if not t.reference]
        if missing:
            raise ValueError(f"{source}: task {missing[0]} has no reference solution to learn")
        return [shaped(t.meta.get("broken", t.prompt), t.reference) for t in tasks]
    path = Path(source)
    if path.is_dir():
        from greenloop.data.shards import input_shards, read_pairs

        return [shaped(p["buggy"], p["fixed"]) for p in read_pairs(input_shards(path)) if p["buggy"] != p["fixed"]]
    examples = []
    for record in read_jsonl(str(path)):
        data = record.data
        keys = ("prompt", "completion") if "prompt" in data else ("buggy", "fixed")
        if not all(isinstance(data.get(k), str) for k in keys):
            raise DataError(record.path, record.line, "expected string fields prompt/completion or buggy/fixed",
                            field=keys[0] if not isinstance(data.get(keys[0]), str) else keys[1])
        examples.append((data["prompt"], data["completion"]) if keys[0] == "prompt" else shaped(data["buggy"], data["fixed"]))
    return examples
