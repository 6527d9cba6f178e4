"""RMS normalization over the hidden dimension, with a learned per-feature gain.

Variants: shapes vary batch_size and seq_len; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
seq_len = 128
hidden = 128
eps = 1e-6


class Model(nn.Module):
    """x / sqrt(mean(x ** 2) + eps) * gain, the mean taken along the hidden dimension."""

    def __init__(self, hidden, eps):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))

    def forward(self, x):  # (batch_size, seq_len, hidden) -> same
        scale = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return x * scale * self.gain


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden)]


def get_init_inputs():
    return [hidden, eps]


LEVEL = 1
CATEGORY = "norm"
SHAPE_VARIANTS = [{"batch_size": 2, "seq_len": 13}, {"batch_size": 1, "seq_len": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
