"""How a trained TRM answers: `repair()` with halting, `forward_fixed()` with a fixed
number of supervision steps and no data-dependent control flow (ONNX export, timing), and
`ranked_repairs()`, a single-change model's candidate fixes in order (the parse check of
`greenloop.train.checked_repair`). A mixin of `TRMForRepair`, kept apart so the model file
holds the architecture and its loss."""

from __future__ import annotations

import torch
from torch import nn

from greenloop.models.layers import require


class TRMInference:
    def _until_halted(self, input_ids: torch.Tensor, max_steps: int | None, hint_lines: torch.Tensor | None):
        """Supervision steps until every example halts (or max_steps, default
        config.supervision_steps): yields (out, the examples that halt at this step (B,), step)."""
        max_steps = max_steps or self.config.supervision_steps
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        state = self.initial_state(input_ids)
        for step in range(1, max_steps + 1):
            out = self(input_ids=input_ids, state=state, hint_lines=hint_lines)
            state = out.state
            stop = out.halted | (step == max_steps)
            yield out, stop & ~done, step
            done |= stop
            if bool(done.all()):
                return

    @torch.no_grad()
    def repair(self, input_ids: torch.Tensor, max_steps: int | None = None, hint_lines: torch.Tensor | None = None):
        """Supervision steps until every example halts (or max_steps, default
        config.supervision_steps); each example keeps its answer from the step it halted at.
        Returns (ids (B, L, W), steps_used (B,))."""
        answer = torch.full_like(input_ids, self.config.pad_token_id or 0)
        steps_used = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        for out, newly, step in self._until_halted(input_ids, max_steps, hint_lines):
            answer[newly] = self.answer(input_ids, out)[newly]
            steps_used[newly] = step
        return answer, steps_used

    def forward_fixed(self, input_ids: torch.Tensor, steps: int = 1, hint_lines: torch.Tensor | None = None):
        """`steps` supervision steps from the initial state with no data-dependent control
        flow (for ONNX export and timing). Returns (logits (B, L, W, V), q_halt (B,)), and
        with config.edits the insertion pointer's logits (B, L*W + 1) and the inserted
        token's logits (B, L, W, V) after them."""
        y = self._answer_state(input_ids, steps, hint_lines)
        logits, q_halt, where = self.heads(y, input_ids)
        if where is None:
            return logits, q_halt
        return logits, q_halt, where, self.edit_heads.token_logits(self.lm_head, y).unflatten(1, input_ids.shape[1:])

    def _answer_state(self, input_ids: torch.Tensor, steps: int, hint_lines: torch.Tensor | None) -> torch.Tensor:
        """y (B, N, C) after `steps` supervision steps from the initial state."""
        x = self.embed(input_ids, hint_lines)
        mask = self.attention_inputs(input_ids)
        state = self.initial_state(input_ids)
        y, z = state.y, state.z
        for _ in range(steps * self.config.n_deep):
            y, z = self.latent_recursion(x, y, z, mask)
        return y

    @torch.no_grad()
    def ranked_repairs(self, input_ids: torch.Tensor, k: int, hint_lines: torch.Tensor | None = None,
                       max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A single-change model's answer and its other likeliest repairs of each grid:
        (grids (B, k', L, W), log-probabilities (B, k'), steps used (B,)), k' <= k. The
        supervision steps halt as in `repair()`, and the first grid is `repair()`'s answer
        exactly (see `EditHeads.ranked_changes`)."""
        require(self.config.single_change, "single_change", "ranked repairs need a single_change model")
        kept = None  # each program's (y, logits, pointer, answer) from the step it halted at
        steps_used = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        for out, newly, step in self._until_halted(input_ids, max_steps, hint_lines):
            now = (out.state.y, out.logits, out.insert_where, self.answer(input_ids, out))
            kept = now if kept is None else tuple(
                torch.where(newly.view(-1, *[1] * (a.dim() - 1)), a, b) for a, b in zip(now, kept))
            steps_used[newly] = step
        y, logits, where, answer = kept
        grids, scores = self.edit_heads.ranked_changes(self.lm_head, logits, y, where, input_ids, k)
        grids[:, 0] = answer  # the same as the ranking's first but for ties, which argmax breaks its own way
        return grids, scores, steps_used


class TRMFixedSteps(nn.Module):
    """A TRM with a fixed number of supervision steps as a plain module:
    `torch.onnx.export(TRMFixedSteps(model, steps), (input_ids,), path)`."""

    def __init__(self, model: nn.Module, steps: int = 1):
        super().__init__()
        self.model = model
        self.steps = steps

    def forward(self, input_ids: torch.Tensor, hint_lines: torch.Tensor | None = None):
        return self.model.forward_fixed(input_ids, self.steps, hint_lines)
