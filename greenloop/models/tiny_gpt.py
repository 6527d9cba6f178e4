"""TinyGPT: the plain baseline, a pre-norm causal transformer language model.

GPT-2's decoder ("Language Models are Unsupervised Multitask Learners", Radford et al. 2019)
with the LLaMA-era parts that help small models (Touvron et al. 2023): RMSNorm before each
sub-layer, rotary positions (RoPE) inside attention, a SwiGLU MLP, no biases, and the output
layer tied to the token embedding.

    h_0 = E[x]                                      token embeddings, (B, T, C)
    h_l = h_{l-1} + Attn(norm(h_{l-1}))             causal self-attention with RoPE
    h_l = h_l + MLP(norm(h_l))                      for l = 1..L
    p(x_{t+1} | x_<=t) = softmax(norm(h_L)_t E^T)

Labels: `labels` follow the Hugging Face convention (labels = input_ids, shifted inside, -100
ignored) so HF tools (Trainer, TRL, PEFT) work unchanged; `targets` are already shifted
(targets[t] is the token after input_ids[t], -100 ignored), which is what a from-scratch
trainer builds as y = x[1:]. `generate()` comes from transformers' GenerationMixin and uses a
KV cache (`kv_cache.GrowingLayer`: appends without copying the cache); `config.use_cache=False`
generates without one.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from greenloop.models.kv_cache import growing_cache
from greenloop.models.layers import (
    RMSNorm,
    TransformerBlock,
    aligned_targets,
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


class TinyGPTConfig(PretrainedConfig):
    """Sizes of a TinyGPT. The defaults (4.3M parameters at vocab 4096) train on a 2-core CPU."""

    model_type = "greenloop_gpt"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 4096,  # greenloop BPE: <|pad|>=0 <|bos|>=1 <|eos|>=2 <|sep|>=3 <|eol|>=4
        hidden_size: int = 256,  # C, the width of the residual stream
        num_hidden_layers: int = 4,  # transformer blocks
        num_attention_heads: int = 4,  # H; head size D = C / H must be even (RoPE rotates pairs)
        intermediate_size: int | None = None,  # SwiGLU width; None: 8/3 C rounded up to 32
        rope_theta: float = 10000.0,  # RoPE base: the slowest rotation's wavelength ~ 2*pi*theta
        rms_norm_eps: float = 1e-6,
        dropout: float = 0.0,  # attention and residual dropout; 0 for small data is rarely right
        initializer_range: float = 0.02,  # std of weights; residual outputs get std/sqrt(2L)
        tie_word_embeddings: bool = True,  # output layer shares the token embedding
        use_cache: bool = True,  # KV cache in generate()
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        if intermediate_size is None:
            intermediate_size = swiglu_intermediate_size(hidden_size)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self.tie_word_embeddings = tie_word_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self._check()
        super().__init__(**kwargs)

    def _check(self) -> None:
        require_positive_ints(self, "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size")
        require_head_split(self, even=True)
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.rope_theta > 0, "rope_theta", f"must be > 0, got {self.rope_theta}")
        require_token_ids_in_vocabulary(self)


class TinyGPTForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = TinyGPTConfig
    base_model_prefix = "model"  # no base-model submodule: the whole file is one model
    _no_split_modules = ["TransformerBlock"]
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}
    _supports_sdpa = True

    def __init__(self, config: TinyGPTConfig):
        super().__init__(config)
        C = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, C)
        self.layers = nn.ModuleList(
            TransformerBlock(C, config.num_attention_heads, config.intermediate_size, config.rms_norm_eps,
                             post_norm=False, dropout=config.dropout)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(C, config.rms_norm_eps)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.post_init()  # initialises weights (_init_weights) and ties lm_head to embed_tokens

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if getattr(module, "residual_projection", False):  # GPT-2: keep the residual stream's variance flat
                std = std / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def generate(self, *args, **kwargs):
        """transformers' generate, with the growing KV cache unless one is given."""
        if kwargs.get("past_key_values") is None and kwargs.get("use_cache", self.config.use_cache):
            kwargs["past_key_values"] = growing_cache()
        return super().generate(*args, **kwargs)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, past + T), 1 = real token, 0 = padding
        position_ids: torch.LongTensor | None = None,  # (B, T); default: count of real tokens before
        past_key_values=None,  # a transformers Cache holding earlier keys/values
        labels: torch.LongTensor | None = None,  # (B, T) HF convention: = input_ids, shifted here
        targets: torch.LongTensor | None = None,  # (B, T) already shifted: next tokens
        use_cache: bool | None = None,  # make a cache if none was given (generate() makes its own)
        logits_to_keep: int = 0,  # >0: logits for the last n positions only (generation)
        **kwargs,
    ) -> CausalLMOutputWithPast:
        B, T = input_ids.shape
        if use_cache and past_key_values is None:
            past_key_values = growing_cache()
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            position_ids = token_positions(attention_mask, T, past_length, input_ids.device)
        rotary = rotary_cos_sin(position_ids, self.config.hidden_size // self.config.num_attention_heads,
                                self.config.rope_theta)
        mask, causal = sdpa_mask(attention_mask, B, T, past_length, True, input_ids.device)

        x = self.embed_tokens(input_ids)  # (B, T, C)
        for index, block in enumerate(self.layers):
            x = block(x, rotary, mask, causal, past_key_values, index)
        x = self.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        aligned = aligned_targets(labels, targets, shift=True)  # (B, T) next tokens
        if aligned is not None:
            loss = token_cross_entropy(logits, aligned[:, -logits.shape[1]:], kwargs.get("num_items_in_batch"))
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=past_key_values)


register_auto_classes(TinyGPTConfig, TinyGPTForCausalLM, causal_lm=True)
