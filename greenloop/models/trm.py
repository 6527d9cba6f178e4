"""TRM: a Tiny Recursive Model that repairs a program laid out on a token grid.

"Less is More: Recursive Reasoning with Tiny Networks" (Jolicoeur-Martineau, 2025). One small
network is applied over and over to improve an answer, instead of one deep network once.

The grid: a buggy program as L lines x W tokens, input_ids (B, L, W), pad = 0. The answer is
the fixed program on the same grid, logits (B, L, W, V), pad cells included (a fix may insert a
token and push the end-of-line marker right). With `edits=True` the answer is instead an edit
per cell (`greenloop.models.grid_edits`): the logits give the token each cell becomes (pad:
deleted); one pointer per program (B, L*W + 1) picks the cell a token is inserted before,
or nothing (the last slot); and the inserted token's logits come from the same output
embedding, computed only where an insertion is made or wanted. A fix that inserts a token
is then one decision, not a shifted line (one insertion per program: the single-place
bugs of the data factory; substitutions and deletions are per cell and unlimited). With
`single_change=True` too, the pointer picks the one cell that changes (its output and an
insertion before it) and every other cell is copied as written.
Batches may be cropped to their content, so positions are looked up by (line, column) and
never assume the full grid.

Embedding: x = sqrt(C) * (token + line + column embeddings), flattened to cells (B, N=L*W, C).
`net` is n_layers non-causal post-norm transformer blocks over all N cells. Two states, the
answer y and the latent z, both (B, N, C). z starts from a learned vector. y starts, for
repair, as the buggy program itself (`answer_init="input"`: y0 = x), and the output head
shares the token embedding (`tie_word_embeddings`), so before any training the model
answers with the program unchanged and learns only the edit: copying hundreds of cells
right is free, and the gradient goes to the few cells a fix changes. `answer_init="learned"`
is the paper's learned vector. In words:

    latent recursion:   n times  z <- net(x + y + z)       (think: refine the reasoning)
                        once     y <- net(y + z)           (act: refine the answer)
    deep recursion:     T latent recursions; the first T-1 without gradients, the last with
    supervision step:   one deep recursion, then logits = head(y), q_halt = q_head(mean(y)),
                        loss, optimiser step; y and z are carried, detached, to the next step

Loss of a step: cross-entropy over every cell of the given grid (labels -100 ignored; cells
the fix changes weigh `edit_weight` times more), or with edits the edit loss of `grid_edits`,
plus halt_loss_weight * BCE(q_halt, [the predicted grid equals the target exactly]).

Halting (our choice, documented): an example has halted when sigmoid(q_halt) > 0.5 or it has
had `supervision_steps` steps. In training `out.halted` only tells the trainer when it may
stop early (all examples keep being updated until the loop ends); in `repair()` each example
keeps the answer from the step it halted at. The paper's exploration (random minimum halting
steps) and weight EMA belong to the trainer and are not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from greenloop.models.grid_edits import EditHeads, apply_edits, edit_loss, single_change_loss
from greenloop.models.layers import (
    init_as_recursive_papers,
    truncated_normal,
    TransformerBlock,
    exact_match,
    register_auto_classes,
    rotary_cos_sin,
    require,
    require_head_split,
    require_positive_ints,
    require_token_ids_in_vocabulary,
    swiglu_intermediate_size,
    token_cross_entropy,
)
from greenloop.models.trm_inference import TRMFixedSteps, TRMInference


class TRMConfig(PretrainedConfig):
    """Sizes and recursion depths of a TRM; the paper's depths (n=6, T=3, N_sup=16);
    1.5M parameters at vocab 4096."""

    model_type = "greenloop_trm"
    attribute_map = {"num_hidden_layers": "n_layers"}

    def __init__(
        self,
        vocab_size: int = 4096,  # greenloop BPE: <|pad|>=0 <|bos|>=1 <|eos|>=2 <|sep|>=3 <|eol|>=4
        hidden_size: int = 128,  # C
        num_attention_heads: int = 4,  # H
        n_layers: int = 2,  # transformer blocks in `net` (the paper: 2)
        intermediate_size: int | None = None,  # SwiGLU width; None: 8/3 C rounded up to 32
        grid_lines: int = 64,  # most lines a grid may have (L <= grid_lines)
        grid_width: int = 48,  # most tokens a line may have (W <= grid_width)
        n_latent: int = 6,  # n: z updates per latent recursion
        n_deep: int = 3,  # T: latent recursions per supervision step (T-1 without gradients)
        supervision_steps: int = 16,  # N_sup: most supervision steps per example
        halt_loss_weight: float = 0.5,  # weight of the halting BCE next to the cross-entropy
        mask_pad_keys: bool = False,  # attention ignores cells that are pad in the input
        edit_weight: float = 1.0,  # loss weight of cells the fix changes (1: plain cross-entropy)
        rope_2d: bool = True,  # rotary angles from (column, line) in attention: "the cell to my left" is easy
        line_hint: bool = True,  # add a learned vector to the cells of the line the parser flags
        window_radius: int = 0,  # >0: flagged programs are repaired in 2r+1 rows around the parser's line
        edits: bool = False,  # answer as edits: per cell an output and an insertion (see grid_edits)
        single_change: bool = False,  # with edits: only the cell the pointer picks changes (see grid_edits)
        answer_init: str = "input",  # y starts as the buggy program's embedding ("input") or a learned vector
        rms_norm_eps: float = 1e-5,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        if intermediate_size is None:
            intermediate_size = swiglu_intermediate_size(hidden_size)
        require(not kwargs.pop("copy_shift", False), "copy_shift",
                "was replaced by edits=True (an insertion is one decision, not a shifted line): retrain with it")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.n_layers = n_layers
        self.intermediate_size = intermediate_size
        self.grid_lines = grid_lines
        self.grid_width = grid_width
        self.n_latent = n_latent
        self.n_deep = n_deep
        self.supervision_steps = supervision_steps
        self.halt_loss_weight = halt_loss_weight
        self.mask_pad_keys = mask_pad_keys
        self.edit_weight = edit_weight
        self.answer_init = answer_init
        self.line_hint = line_hint
        self.rope_2d = rope_2d
        self.window_radius = window_radius
        self.edits = edits
        self.single_change = single_change
        self.rms_norm_eps = rms_norm_eps
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self._check()
        kwargs.setdefault("tie_word_embeddings", True)  # with answer_init="input", y decodes to the input at once
        super().__init__(**kwargs)

    def _check(self) -> None:
        require_positive_ints(self, "vocab_size", "hidden_size", "num_attention_heads", "n_layers", "intermediate_size",
                              "grid_lines", "grid_width", "n_latent", "n_deep", "supervision_steps")
        require_head_split(self, even=False)
        require(self.halt_loss_weight >= 0, "halt_loss_weight", f"must be >= 0, got {self.halt_loss_weight}")
        require(self.answer_init in ("input", "learned"), "answer_init",
                f"expected 'input' or 'learned', got {self.answer_init!r}")
        require(isinstance(self.window_radius, int) and self.window_radius >= 0, "window_radius",
                f"must be a whole number >= 0, got {self.window_radius!r}")
        require(not self.rope_2d or (self.hidden_size // max(self.num_attention_heads, 1)) % 4 == 0, "rope_2d",
                "needs a head size (hidden_size / num_attention_heads) divisible by 4")
        require(self.edit_weight > 0, "edit_weight", f"must be > 0, got {self.edit_weight}")
        require(not (self.edits and self.edit_weight != 1.0), "edits", "edit_weight applies to grid answers only")
        require(self.edits or not self.single_change, "single_change", "needs edits=True")
        require_token_ids_in_vocabulary(self)


@dataclass
class TRMState:
    """What one supervision step hands to the next: answer y, latent z (B, N, C), and the
    number of supervision steps each example has had (B,)."""

    y: torch.Tensor
    z: torch.Tensor
    steps: torch.Tensor


@dataclass
class TRMOutput(ModelOutput):
    loss: torch.Tensor | None = None  # lm_loss + halt_loss_weight * halt_loss
    logits: torch.Tensor | None = None  # (B, L, W, V)
    q_halt: torch.Tensor | None = None  # (B,) logit of "the answer is right, stop"
    halted: torch.Tensor | None = None  # (B,) bool
    state: TRMState | None = None  # detached: carry it to the next supervision step
    lm_loss: torch.Tensor | None = None
    halt_loss: torch.Tensor | None = None
    insert_where: torch.Tensor | None = None  # (B, L*W + 1) with config.edits: insert before cell j / nowhere
    insertions: torch.Tensor | None = None  # (B, L, W) with config.edits: the token inserted there (pad: none)
    outputs: torch.Tensor | None = None  # (B, L, W) with config.edits: the token each cell becomes (pad: deleted)


class TRMForRepair(TRMInference, PreTrainedModel):
    config_class = TRMConfig
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}
    base_model_prefix = "trm"  # no base-model submodule: the whole file is one model
    main_input_name = "input_ids"
    _no_split_modules = ["TransformerBlock"]
    _supports_sdpa = True

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        C = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, C)
        self.embed_lines = nn.Embedding(config.grid_lines, C)
        self.embed_columns = nn.Embedding(config.grid_width, C)
        self.net = nn.ModuleList(
            TransformerBlock(C, config.num_attention_heads, config.intermediate_size, config.rms_norm_eps, post_norm=True)
            for _ in range(config.n_layers)
        )
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.q_head = nn.Linear(C, 1)
        self.y_init = nn.Parameter(torch.zeros(C))
        self.z_init = nn.Parameter(torch.zeros(C))
        self.hint_vector = nn.Parameter(torch.zeros(C))  # marks the parser's error line (line_hint)
        self.edit_heads = EditHeads(C, config.grid_lines * config.grid_width) if config.edits else None
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        # The papers' initialisation; the initial states as their code draws them.
        init_as_recursive_papers(module, self.q_head, self.config.hidden_size)
        if isinstance(module, TRMForRepair):
            truncated_normal(module.y_init, 1.0)
            truncated_normal(module.z_init, 1.0)
            truncated_normal(module.hint_vector, 1.0 / math.sqrt(self.config.hidden_size))  # as a token embedding
        if self.edit_heads is not None:  # silent at first: the untrained model answers with its input
            self.edit_heads.silence(module)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    # ---- the recursion -------------------------------------------------------------------

    def embed(self, input_ids: torch.Tensor, hint_lines: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, W) token grid -> x (B, L*W, C); hint_lines (B,): the row the parser flags
        in each program (-1: none), marked when config.line_hint."""
        L, W = input_ids.shape[1:]
        require(L <= self.config.grid_lines, "input_ids", f"{L} lines > grid_lines={self.config.grid_lines}")
        require(W <= self.config.grid_width, "input_ids", f"{W} columns > grid_width={self.config.grid_width}")
        lines = self.embed_lines(torch.arange(L, device=input_ids.device))  # (L, C)
        columns = self.embed_columns(torch.arange(W, device=input_ids.device))  # (W, C)
        x = self.embed_tokens(input_ids) + lines[:, None, :] + columns[None, :, :]  # (B, L, W, C)
        if hint_lines is not None and self.config.line_hint:
            flagged = torch.arange(L, device=input_ids.device)[None, :] == hint_lines[:, None]  # (B, L)
            x = x + flagged[:, :, None, None].to(x.dtype) * self.hint_vector
        return math.sqrt(self.config.hidden_size) * x.flatten(1, 2)  # (B, N, C)

    def key_mask(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """SDPA mask (B, 1, 1, N), True = attend, hiding input pad cells as keys; None when
        config.mask_pad_keys is off. An all-pad grid attends everywhere (no empty rows)."""
        if not self.config.mask_pad_keys:
            return None
        content = (input_ids != self.config.pad_token_id).flatten(1)  # (B, N)
        content = content | ~content.any(dim=1, keepdim=True)
        return content[:, None, None, :]

    def attention_inputs(self, input_ids: torch.Tensor):
        """(rotary, key mask) for the blocks. With config.rope_2d, each head's rotated pairs
        take half their angles from the cell's column and half from its line, so attention
        depends on relative offsets (a fix that inserts a token shifts the rest of its line
        by one column: each cell reads its left neighbour)."""
        rotary = None
        if self.config.rope_2d:
            L, W = input_ids.shape[1:]
            quarter = self.config.hidden_size // self.config.num_attention_heads // 4
            # Each cell's line and column, by broadcasting: the ONNX exporter (dynamo) turned
            # repeat_interleave into an Expand that fails at run time for a grid whose
            # line count differs from its column count.
            lines = torch.arange(L, device=input_ids.device)[:, None].expand(L, W).reshape(-1)  # (N,)
            columns = torch.arange(W, device=input_ids.device)[None, :].expand(L, W).reshape(-1)  # (N,)
            cos_c, sin_c = rotary_cos_sin(columns, 2 * quarter)  # (1, 1, N, quarter)
            cos_l, sin_l = rotary_cos_sin(lines, 2 * quarter)
            rotary = (torch.cat((cos_c, cos_l), dim=-1), torch.cat((sin_c, sin_l), dim=-1))
        return rotary, self.key_mask(input_ids)

    def run_net(self, h: torch.Tensor, attention) -> torch.Tensor:
        rotary, mask = attention
        for block in self.net:
            h = block(h, rotary=rotary, mask=mask)  # (B, N, C), non-causal
        return h

    def latent_recursion(self, x, y, z, mask):
        for _ in range(self.config.n_latent):
            z = self.run_net(x + y + z, mask)  # reason: the latent sees question, answer, itself
        y = self.run_net(y + z, mask)  # act: the answer sees only the latent (no x: a different task)
        return y, z

    def deep_recursion(self, x, y, z, mask):
        with torch.no_grad():
            for _ in range(self.config.n_deep - 1):
                y, z = self.latent_recursion(x, y, z, mask)
        return self.latent_recursion(x, y, z, mask)  # gradients flow through this one only

    def heads(self, y: torch.Tensor, input_ids: torch.Tensor):
        """y (B, N, C) -> logits (B, L, W, V), q_halt (B,), and with config.edits the
        insertion pointer's logits (B, N + 1), else None."""
        L, W = input_ids.shape[1:]
        logits = self.lm_head(y).unflatten(1, (L, W))
        q_halt = self.q_head(y.mean(dim=1)).squeeze(-1)
        return logits, q_halt, None if self.edit_heads is None else self.edit_heads.where(y, input_ids)

    def answer(self, input_ids: torch.Tensor, out: TRMOutput) -> torch.Tensor:
        """The grid the model answers: the argmax per cell, or with edits what they write."""
        if out.insertions is None:
            return out.logits.argmax(-1)
        return apply_edits(input_ids, out.outputs, out.insertions)

    # ---- the public interface ------------------------------------------------------------

    def initial_state(self, input_ids: torch.Tensor) -> TRMState:
        """The initial answer y (the buggy program's embedding, or a learned vector) and the
        learned initial latent z, over a grid's cells; zero steps done."""
        B, L, W = input_ids.shape
        shape = (B, L * W, self.config.hidden_size)
        steps = torch.zeros(B, dtype=torch.long, device=input_ids.device)
        if self.config.answer_init == "input":  # a repair starts from the program as written
            y = self.embed(input_ids)
        else:
            y = self.y_init.expand(shape)
        return TRMState(y, self.z_init.expand(shape), steps)

    def forward(
        self,
        input_ids: torch.LongTensor,  # (B, L, W) buggy program
        labels: torch.LongTensor | None = None,  # (B, L, W) fixed program, -100 = ignore
        state: TRMState | None = None,  # from initial_state() or the previous step's out.state
        hint_lines: torch.LongTensor | None = None,  # (B,) the parser's error row, -1: none
        **kwargs,
    ) -> TRMOutput:
        """ONE supervision step: a deep recursion from `state`, the heads, the loss."""
        B, L, W = input_ids.shape
        if state is None:
            state = self.initial_state(input_ids)
        require(tuple(state.y.shape) == (B, L * W, self.config.hidden_size), "state",
                f"y has shape {tuple(state.y.shape)}, the grid needs {(B, L * W, self.config.hidden_size)}")
        x = self.embed(input_ids, hint_lines)
        y, z = self.deep_recursion(x, state.y, state.z, self.attention_inputs(input_ids))
        logits, q_halt, where = self.heads(y, input_ids)
        steps = state.steps + 1
        halted = (q_halt > 0) | (steps >= self.config.supervision_steps)  # sigmoid(q) > 0.5, or out of steps
        out = TRMOutput(logits=logits, q_halt=q_halt, halted=halted, state=TRMState(y.detach(), z.detach(), steps))
        if where is not None:
            self._add_edits(out, y, where, input_ids, labels)
        elif labels is not None:
            self._add_loss(out, labels, input_ids)
        return out

    def _add_edits(self, out: TRMOutput, y, where, input_ids, labels) -> None:
        """The edits the model makes, and with labels their loss (see grid_edits)."""
        heads, single = self.edit_heads, self.config.single_change
        with torch.no_grad():
            out.insert_where = where
            if single:
                out.outputs, out.insertions = heads.single_change(self.lm_head, out.logits, y, where, input_ids)
            else:
                out.outputs = out.logits.argmax(-1)
                out.insertions = heads.insertions(self.lm_head, y, where, input_ids.shape)
        if labels is not None:
            inserted = partial(heads.token_logits, self.lm_head, y)  # cells -> their token logits
            loss = single_change_loss if single else edit_loss
            out.lm_loss, correct = loss(out.logits, where, inserted, input_ids, labels, (out.outputs, out.insertions))
            self._add_halt_loss(out, correct)

    def _add_loss(self, out: TRMOutput, labels: torch.Tensor, input_ids: torch.Tensor) -> None:
        require(labels.shape == out.logits.shape[:3], "labels",
                f"shape {tuple(labels.shape)} differs from the grid {tuple(out.logits.shape[:3])}")
        if self.config.edit_weight == 1.0:
            out.lm_loss = token_cross_entropy(out.logits, labels)
        else:  # cells the fix changes weigh more: one edited cell among hundreds copied
            per_cell = F.cross_entropy(out.logits.flatten(0, 2).float(), labels.flatten(), ignore_index=-100,
                                       reduction="none")
            counted = (labels.flatten() != -100).to(per_cell.dtype)
            weight = counted * (1 + (self.config.edit_weight - 1) * (labels != input_ids).flatten().to(per_cell.dtype))
            out.lm_loss = (per_cell * weight).sum() / weight.sum().clamp(min=1)
        self._add_halt_loss(out, exact_match(out.logits, labels))

    def _add_halt_loss(self, out: TRMOutput, correct: torch.Tensor) -> None:
        """correct (B,): the answer is already right, the halting head's target."""
        out.halt_loss = F.binary_cross_entropy_with_logits(out.q_halt, correct.to(out.q_halt.dtype))
        out.loss = out.lm_loss + self.config.halt_loss_weight * out.halt_loss


register_auto_classes(TRMConfig, TRMForRepair, causal_lm=False)

__all__ = ["TRMConfig", "TRMFixedSteps", "TRMForRepair", "TRMOutput", "TRMState"]
