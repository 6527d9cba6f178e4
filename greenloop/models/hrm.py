"""HRM: the Hierarchical Reasoning Model, as a (causal) sequence model.

"Hierarchical Reasoning Model" (Wang et al., 2025). Two recurrent modules of transformer
blocks work at two speeds: a slow high-level module H and a fast low-level module L. Both
states are per position, z_H and z_L (B, T, C), and start from learned vectors (which only
receive gradients when N*T = 1: otherwise they feed only the no-grad steps).

    x = sqrt(C) * token embedding                               (B, T, C); RoPE inside attention
    for each of N = h_cycles high-level steps:
        T = l_cycles times:   z_L <- L(z_L + z_H + x)           fast: works under a fixed plan
        once:                 z_H <- H(z_H + z_L)               slow: updates the plan
    logits = head(z_H)

One-step gradient approximation: every update except the last L step and the last H step
runs under no_grad, so backpropagation costs one L pass and one H pass whatever N and T are.

Adaptive computation time (ACT): one `forward` is one segment of the above, started from the
carried, detached state of the previous segment (deep supervision: the trainer steps the
optimiser after every segment). A Q-head on z_H (mean over real positions) gives
(q_halt, q_continue). Trained with the paper's Q-learning targets:
    q_halt     -> [the segment's prediction is exactly right]                      (BCE)
    q_continue -> sigmoid(q_halt') at the last segment, else sigmoid(max(q_halt', q_continue'))
                  where ' is the next segment, run once more without gradients        (BCE)
loss = cross-entropy + halt_loss_weight * (both BCEs); with halt_max_steps = 1 there is one
segment, no Q-loss and the model trains as a plain language model. Halting: an example has
halted when q_halt > q_continue or it has had halt_max_steps segments; in training, with
probability halt_exploration_prob an example must first run a random 2..halt_max_steps
segments (the paper's exploration).

causal=True: every block uses causal attention and every state is per position, so future
tokens never change past logits; `labels` follow the HF convention (labels = input_ids,
shifted inside), `targets` are already shifted; `generate()` works (no KV cache: each new
token re-reads the sequence, running halt_max_steps segments from the initial state, which
keeps generation causal). causal=False: a non-causal sequence model; labels are aligned with
the positions and are not shifted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from greenloop.models.layers import (
    init_as_recursive_papers,
    truncated_normal,
    TransformerBlock,
    aligned_targets,
    exact_match,
    register_auto_classes,
    require,
    require_head_split,
    require_positive_ints,
    require_token_ids_in_vocabulary,
    rotary_cos_sin,
    sdpa_mask,
    swiglu_intermediate_size,
    token_cross_entropy,
    token_positions,
)


class HRMConfig(PretrainedConfig):
    """Sizes, cycles and halting of an HRM. Defaults: 5.3M parameters at vocab 4096 (the head is untied)."""

    model_type = "greenloop_hrm"

    def __init__(
        self,
        vocab_size: int = 4096,  # greenloop BPE: <|pad|>=0 <|bos|>=1 <|eos|>=2 <|sep|>=3 <|eol|>=4
        hidden_size: int = 256,  # C
        num_attention_heads: int = 4,  # H; head size C / H must be even (RoPE)
        intermediate_size: int | None = None,  # SwiGLU width; None: 8/3 C rounded up to 32
        h_layers: int = 2,  # transformer blocks in the high-level module
        l_layers: int = 2,  # transformer blocks in the low-level module
        h_cycles: int = 2,  # N: high-level updates per segment
        l_cycles: int = 2,  # T: low-level updates per high-level update
        halt_max_steps: int = 1,  # most ACT segments; 1 = a plain one-segment model
        halt_exploration_prob: float = 0.1,  # chance an example must run a random minimum of segments
        halt_loss_weight: float = 0.5,  # weight of the Q-head BCEs next to the cross-entropy
        causal: bool = True,  # causal attention everywhere: a language model with generate()
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        use_cache: bool = False,  # there is no KV cache; generate() re-reads the sequence
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        if intermediate_size is None:
            intermediate_size = swiglu_intermediate_size(hidden_size)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.h_layers = h_layers
        self.l_layers = l_layers
        self.h_cycles = h_cycles
        self.l_cycles = l_cycles
        self.halt_max_steps = halt_max_steps
        self.halt_exploration_prob = halt_exploration_prob
        self.halt_loss_weight = halt_loss_weight
        self.causal = causal
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self._check()
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    def _check(self) -> None:
        require_positive_ints(self, "vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
                              "h_layers", "l_layers", "h_cycles", "l_cycles", "halt_max_steps")
        require_head_split(self, even=True)
        p = self.halt_exploration_prob
        require(0.0 <= p <= 1.0, "halt_exploration_prob", f"must be in [0, 1], got {p}")
        require(self.halt_loss_weight >= 0, "halt_loss_weight", f"must be >= 0, got {self.halt_loss_weight}")
        require_token_ids_in_vocabulary(self)


@dataclass
class HRMState:
    """What one segment hands to the next: z_H, z_L (B, T, C) and segments done (B,)."""

    z_h: torch.Tensor
    z_l: torch.Tensor
    steps: torch.Tensor


@dataclass
class HRMOutput(ModelOutput):
    loss: torch.Tensor | None = None  # lm_loss + halt_loss_weight * q_loss
    logits: torch.Tensor | None = None  # (B, T, V)
    q_halt: torch.Tensor | None = None  # (B,) logits
    q_continue: torch.Tensor | None = None  # (B,)
    halted: torch.Tensor | None = None  # (B,) bool
    state: HRMState | None = None  # detached: carry it to the next segment
    lm_loss: torch.Tensor | None = None
    q_loss: torch.Tensor | None = None


class SegmentInputs(NamedTuple):
    """What every L and H update of a forward shares."""

    x: torch.Tensor  # (B, T, C) input embedding
    rotary: tuple  # RoPE (cos, sin)
    mask: torch.Tensor | None  # SDPA mask
    causal: bool  # SDPA's own causal mask


class HRMForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = HRMConfig
    base_model_prefix = "hrm"  # no base-model submodule: the whole file is one model
    _no_split_modules = ["TransformerBlock"]
    _supports_sdpa = True

    def __init__(self, config: HRMConfig):
        super().__init__(config)
        C, heads, width, eps = config.hidden_size, config.num_attention_heads, config.intermediate_size, config.rms_norm_eps
        self.embed_tokens = nn.Embedding(config.vocab_size, C)
        self.h_blocks = nn.ModuleList(TransformerBlock(C, heads, width, eps, post_norm=True) for _ in range(config.h_layers))
        self.l_blocks = nn.ModuleList(TransformerBlock(C, heads, width, eps, post_norm=True) for _ in range(config.l_layers))
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.q_head = nn.Linear(C, 2)  # (q_halt, q_continue)
        self.h_init = nn.Parameter(torch.zeros(C))
        self.l_init = nn.Parameter(torch.zeros(C))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        # The papers' initialisation; the initial states as their code draws them.
        init_as_recursive_papers(module, self.q_head, self.config.hidden_size)
        if isinstance(module, HRMForCausalLM):
            truncated_normal(module.h_init, 1.0)
            truncated_normal(module.l_init, 1.0)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    # ---- one segment ---------------------------------------------------------------------

    @staticmethod
    def _run(blocks, h, inputs: SegmentInputs):
        for block in blocks:
            h = block(h, inputs.rotary, inputs.mask, inputs.causal)  # (B, T, C)
        return h

    def segment(self, z_h, z_l, inputs: SegmentInputs):
        """N high-level cycles of T low-level steps; only the last L and H updates keep a graph."""
        N, T = self.config.h_cycles, self.config.l_cycles
        with torch.no_grad():
            for i in range(N * T - 1):
                z_l = self._run(self.l_blocks, z_l + z_h + inputs.x, inputs)
                if (i + 1) % T == 0:
                    z_h = self._run(self.h_blocks, z_h + z_l, inputs)
        z_l = self._run(self.l_blocks, z_l + z_h + inputs.x, inputs)
        z_h = self._run(self.h_blocks, z_h + z_l, inputs)
        return z_h, z_l

    def q_values(self, z_h, attention_mask):
        """(q_halt, q_continue), each (B,), from z_H averaged over real positions."""
        if attention_mask is None:
            pooled = z_h.mean(dim=1)
        else:
            weights = attention_mask[:, -z_h.shape[1]:, None].to(z_h.dtype)  # (B, T, 1)
            pooled = (z_h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        q = self.q_head(pooled).float()  # (B, 2)
        return q[:, 0], q[:, 1]

    # ---- the public interface ------------------------------------------------------------

    def initial_state(self, input_ids: torch.Tensor) -> HRMState:
        """The learned initial z_H and z_L broadcast over the positions, zero segments done."""
        B, T = input_ids.shape
        shape = (B, T, self.config.hidden_size)
        steps = torch.zeros(B, dtype=torch.long, device=input_ids.device)
        return HRMState(self.h_init.expand(shape), self.l_init.expand(shape), steps)

    def _segment_inputs(self, input_ids, attention_mask, position_ids) -> SegmentInputs:
        B, T = input_ids.shape
        causal = self.config.causal
        if position_ids is None:
            position_ids = token_positions(attention_mask if causal else None, T, 0, input_ids.device)
        rotary = rotary_cos_sin(position_ids, self.config.hidden_size // self.config.num_attention_heads,
                                self.config.rope_theta)
        mask, is_causal = sdpa_mask(attention_mask, B, T, 0, causal, input_ids.device)
        x = math.sqrt(self.config.hidden_size) * self.embed_tokens(input_ids)  # (B, T, C)
        return SegmentInputs(x, rotary, mask, is_causal)

    def forward(
        self,
        input_ids: torch.LongTensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T), 1 = real token, 0 = padding
        position_ids: torch.LongTensor | None = None,  # (B, T)
        labels: torch.LongTensor | None = None,  # HF convention (shifted inside when causal)
        targets: torch.LongTensor | None = None,  # already aligned with the positions
        state: HRMState | None = None,  # from initial_state() or the previous out.state
        segments: int = 1,  # segments to run now; all but the last without gradients
        logits_to_keep: int = 0,  # >0: logits for the last n positions only (generation)
        **kwargs,
    ) -> HRMOutput:
        """Segments of HRM from `state` (default: the initial state). The trainer's deep
        supervision calls it with segments=1 and the previous out.state."""
        require(segments >= 1, "segments", f"must be >= 1, got {segments}")
        B, T = input_ids.shape
        if state is None:
            state = self.initial_state(input_ids)
        require(tuple(state.z_h.shape) == (B, T, self.config.hidden_size), "state",
                f"z_h has shape {tuple(state.z_h.shape)}, the input needs {(B, T, self.config.hidden_size)}")
        inputs = self._segment_inputs(input_ids, attention_mask, position_ids)
        z_h, z_l, steps = state.z_h, state.z_l, state.steps
        for _ in range(segments - 1):
            with torch.no_grad():
                z_h, z_l = self.segment(z_h, z_l, inputs)
            steps = steps + 1
        z_h, z_l = self.segment(z_h, z_l, inputs)
        steps = steps + 1
        q_halt, q_continue = self.q_values(z_h, attention_mask)
        logits = self.lm_head(z_h[:, -logits_to_keep:] if logits_to_keep else z_h)  # (B, T, V)
        out = HRMOutput(logits=logits, q_halt=q_halt, q_continue=q_continue,
                        halted=self._halted(q_halt, q_continue, steps),
                        state=HRMState(z_h.detach(), z_l.detach(), steps))
        aligned = aligned_targets(labels, targets, shift=self.config.causal)
        if aligned is not None:
            aligned = aligned[:, -logits.shape[1]:]
            self._add_loss(out, aligned, inputs, attention_mask, kwargs.get("num_items_in_batch"))
        return out

    def _halted(self, q_halt, q_continue, steps):
        """(B,) bool: Q says halt, or out of segments. In training an exploring example must
        first reach a random minimum of 2..halt_max_steps segments."""
        halted = (steps >= self.config.halt_max_steps) | (q_halt > q_continue)
        if self.training and self.config.halt_max_steps > 1:
            explore = torch.rand(steps.shape, device=steps.device) < self.config.halt_exploration_prob
            minimum = torch.randint_like(steps, 2, self.config.halt_max_steps + 1) * explore
            halted = halted & (steps >= minimum)
        return halted

    def _add_loss(self, out, aligned, inputs, attention_mask, num_items_in_batch):
        out.lm_loss = token_cross_entropy(out.logits, aligned, num_items_in_batch)
        out.loss = out.lm_loss
        if self.config.halt_max_steps == 1:
            return  # one segment: nothing to decide, a plain language model
        correct = exact_match(out.logits, aligned).float()  # (B,)
        with torch.no_grad():  # the Q-learning bootstrap: the next segment's Q-values
            z_h, _ = self.segment(out.state.z_h, out.state.z_l, inputs)
            next_halt, next_continue = self.q_values(z_h, attention_mask)
            last = out.state.steps >= self.config.halt_max_steps
            target_continue = torch.sigmoid(torch.where(last, next_halt, torch.maximum(next_halt, next_continue)))
        out.q_loss = (F.binary_cross_entropy_with_logits(out.q_halt, correct)
                      + F.binary_cross_entropy_with_logits(out.q_continue, target_continue))
        out.loss = out.lm_loss + self.config.halt_loss_weight * out.q_loss

    # ---- generation ----------------------------------------------------------------------

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # no KV cache: generate() must not make one

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, past_key_values=None, **kwargs):
        if not self.config.causal:
            raise ValueError("generate() needs a causal HRM (config.causal=True)")
        # Every step re-reads the whole sequence (no cache) from the initial state, with all
        # halt_max_steps segments. generate() copies an output named `state` back into the next
        # call's inputs (it takes it for RWKV's cache): drop it, it belongs to the shorter sequence.
        kwargs.pop("state", None)
        inputs = super().prepare_inputs_for_generation(input_ids, next_sequence_length=None, **kwargs)
        inputs.pop("use_cache", None)
        inputs.setdefault("segments", self.config.halt_max_steps)
        return inputs


register_auto_classes(HRMConfig, HRMForCausalLM, causal_lm=True)

__all__ = ["HRMConfig", "HRMForCausalLM", "HRMOutput", "HRMState"]
