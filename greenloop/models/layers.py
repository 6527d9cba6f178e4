"""Small blocks shared by greenloop's models: RMSNorm, rotary positions, self-attention
through `scaled_dot_product_attention`, the SwiGLU MLP, one transformer block; padding masks
and positions; the label conventions, cross-entropy and exact match; config checks that name
the field; registration with transformers' Auto classes.

Only what more than one model uses lives here; each model file holds the rest of its model.
Shapes: B batch, T sequence length (cells for TRM), C hidden size, H heads, D head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

IGNORE_INDEX = -100  # label value that the losses skip (the PyTorch and Hugging Face default)


# ---- config validation: every error names its field --------------------------------------


def require(condition: bool, field: str, problem: str) -> None:
    """Raise ValueError("field: problem") when `condition` is false."""
    if not condition:
        raise ValueError(f"{field}: {problem}")


def require_positive_ints(config, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        require(ok, field, f"must be an int >= 1, got {value!r}")


def require_head_split(config, even: bool) -> None:
    """hidden_size splits into num_attention_heads heads (of even size when RoPE rotates pairs)."""
    C, H = config.hidden_size, config.num_attention_heads
    ok = C % H == 0 and (not even or (C // H) % 2 == 0)
    require(ok, "hidden_size", f"{C} does not split into {H} heads" + (" of even size (RoPE)" if even else ""))


def require_token_ids_in_vocabulary(config) -> None:
    for field in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(config, field)
        tokens = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        ok = all(isinstance(token, int) and 0 <= token < config.vocab_size for token in tokens)
        require(ok, field, f"{value!r} is outside the vocabulary of {config.vocab_size}")


def swiglu_intermediate_size(hidden_size: int, multiple_of: int = 32) -> int:
    """Width of a SwiGLU MLP with the parameter count of a 4x GELU MLP (8/3 of the hidden
    size, as in LLaMA), rounded up to a multiple of `multiple_of`."""
    width = int(8 * hidden_size / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight. Written out (not nn.RMSNorm) so that every
    ONNX exporter sees plain arithmetic."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


# ---- rotary position embedding (RoFormer, Su et al. 2021) --------------------------------
# Each pair of channels (i, i + D/2) of a query or key at position p is rotated by the angle
# p * theta^(-2i/D), so q·k depends on positions only through their difference. Computed on the
# fly from the positions: no buffers, nothing to save, any length.


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0):
    """positions (B, T) or (T,) int -> cos, sin of shape (B or 1, 1, T, D/2), float32."""
    if positions.dim() == 1:
        positions = positions.unsqueeze(0)
    half = head_dim // 2
    exponent = torch.arange(half, device=positions.device, dtype=torch.float32) / half
    inv_freq = theta ** (-exponent)  # (D/2,)
    angles = positions.float().unsqueeze(-1) * inv_freq  # (B, T, D/2)
    return angles.cos().unsqueeze(1), angles.sin().unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by the angles whose cos/sin are (B|1, 1, T, D/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


# ---- attention, MLP, block ---------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention. `mask` is a boolean (B|1, 1, Tq, Tk) tensor, True = may
    attend; without one, `causal` picks SDPA's built-in causal mask. `cache` is a transformers
    `Cache` (e.g. DynamicCache): new keys/values are appended and the full ones attended to."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, hidden_size, bias=False)
        self.out.residual_projection = True  # read by the models' _init_weights (scaled init)
        self.dropout = dropout

    def forward(self, x, rotary=None, mask=None, causal=False, cache=None, layer_idx=0):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:
            k, v = cache.update(k, v, layer_idx)  # (B, H, Tk, D): past and new
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and mask is None,
        )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.out(y)


class SwiGLU(nn.Module):
    """MLP with a gated SiLU: out(silu(gate(x)) * up(x)) (Shazeer 2020, "GLU Variants")."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.down.residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class TransformerBlock(nn.Module):
    """Attention then MLP, each with a residual connection.

    pre-norm (GPT): x + f(norm(x)); the residual stream grows freely and a final norm follows.
    post-norm (TRM, HRM): norm(x + f(x)); every output has unit RMS, which keeps a state
    that is fed back through the same blocks dozens of times from growing without bound.
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, eps=1e-6, post_norm=False, dropout=0.0):
        super().__init__()
        self.post_norm = post_norm
        self.attn_norm = RMSNorm(hidden_size, eps)
        self.attn = SelfAttention(hidden_size, num_heads, dropout)
        self.mlp_norm = RMSNorm(hidden_size, eps)
        self.mlp = SwiGLU(hidden_size, intermediate_size)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, rotary=None, mask=None, causal=False, cache=None, layer_idx=0):
        if self.post_norm:
            x = self.attn_norm(x + self.resid_dropout(self.attn(x, rotary, mask, causal, cache, layer_idx)))
            return self.mlp_norm(x + self.resid_dropout(self.mlp(x)))
        x = x + self.resid_dropout(self.attn(self.attn_norm(x), rotary, mask, causal, cache, layer_idx))
        return x + self.resid_dropout(self.mlp(self.mlp_norm(x)))


def attention_mask_for(attention_mask, query_length: int, causal: bool):
    """Boolean SDPA mask (B, 1, Tq, Tk) from a (B, Tk) 0/1 key mask whose last Tq columns
    are the queries (Tk > Tq while decoding with a cache). Every query may always attend to
    itself, so a padding query still gets a defined (ignored) output instead of NaN."""
    keys = attention_mask.bool()  # (B, Tk)
    key_length = keys.shape[1]
    offset = key_length - query_length
    q_pos = torch.arange(query_length, device=keys.device).unsqueeze(1) + offset  # (Tq, 1)
    k_pos = torch.arange(key_length, device=keys.device).unsqueeze(0)  # (1, Tk)
    allowed = keys[:, None, None, :].expand(-1, 1, query_length, -1)  # (B, 1, Tq, Tk)
    if causal:
        allowed = allowed & (k_pos <= q_pos)
    return allowed | (k_pos == q_pos)


def token_positions(attention_mask, T: int, past_length: int, device) -> torch.Tensor:
    """Positions of the last T tokens: (B, T) from a (B, past + T) 0/1 mask, else (T,).
    With left padding a token's position is the number of real tokens before it, so a padded
    prompt is positioned exactly like the unpadded one."""
    if attention_mask is not None:
        positions = attention_mask.long().cumsum(-1) - 1
        return positions.clamp(min=0)[:, -T:]  # (B, T)
    return torch.arange(past_length, past_length + T, device=device)  # (T,)


def sdpa_mask(attention_mask, B: int, T: int, past_length: int, causal: bool, device):
    """(mask, is_causal) for SDPA given an optional (B, past + T) 0/1 padding mask; no mask
    tensor at all in the common unpadded cases, so SDPA takes its fast paths."""
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        return attention_mask_for(attention_mask, T, causal), False
    if not causal or past_length == 0:
        return None, causal  # SDPA's own causal mask, or none
    if T == 1:
        return None, False  # one new token sees everything cached
    keys = torch.ones(B, past_length + T, dtype=torch.bool, device=device)
    return attention_mask_for(keys, T, causal=True), False


def aligned_targets(labels=None, targets=None, shift: bool = True):
    """The target of each position, (B, T), IGNORE_INDEX where none, or None.

    labels: Hugging Face convention. For a causal model they are the input ids themselves and
    position t is scored against labels[t + 1] (shifted here, when `shift`); for a
    non-causal model (shift=False) they are already aligned. targets: already aligned, never
    shifted (what a from-scratch trainer builds as y = x[1:]). Give one or neither.
    """
    if labels is not None and targets is not None:
        raise ValueError("give labels (HF convention) or targets (already aligned), not both")
    if labels is not None:
        return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX) if shift else labels
    return targets


def token_cross_entropy(logits, targets, num_items_in_batch=None):
    """Mean cross-entropy over positions whose target is not IGNORE_INDEX. logits (..., V),
    targets (...). num_items_in_batch: the HF Trainer's token count under gradient
    accumulation (then sum / count)."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()  # (N, V)
    flat_targets = targets.reshape(-1).to(flat_logits.device)  # (N,)
    if num_items_in_batch is None:
        return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX)
    total = F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / num_items_in_batch


@torch.no_grad()
def exact_match(logits, targets) -> torch.Tensor:
    """(B,) bool: every position of the example with a target has argmax == target — the
    halting target of HRM and TRM ("is the answer already right?")."""
    counted = targets != IGNORE_INDEX
    right = (logits.argmax(-1) == targets) | ~counted
    return right.flatten(1).all(dim=1)


def init_as_recursive_papers(module: nn.Module, q_head: nn.Module, hidden_size: int) -> None:
    """The TRM and HRM papers' initialisation of one module: truncated LeCun-normal linear
    weights, unit-RMS token embeddings after the sqrt(C) scale, RMSNorm gains of one, and a
    Q-head whose logits start at -5 (sigmoid ~ 0.007: do not halt yet). Model-specific
    parameters (initial states) are the caller's."""
    from transformers import initialization as init

    if module is q_head:
        init.zeros_(module.weight)
        init.constant_(module.bias, -5.0)
    elif isinstance(module, nn.Linear):
        truncated_normal(module.weight, 1.0 / math.sqrt(module.in_features))
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        truncated_normal(module.weight, 1.0 / math.sqrt(hidden_size))
    elif isinstance(module, RMSNorm):
        init.ones_(module.weight)


def truncated_normal(tensor: torch.Tensor, std: float) -> None:
    """Normal with standard deviation `std`, cut at two of them."""
    init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def register_auto_classes(config_class, model_class, *, causal_lm: bool) -> None:
    """Make AutoConfig / AutoModel (and AutoModelForCausalLM) know a greenloop model, so
    `AutoModel.from_pretrained(folder)` works once the module is imported. Registering twice
    (a module reloaded, two imports under different names) is not an error."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    if causal_lm:
        AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
