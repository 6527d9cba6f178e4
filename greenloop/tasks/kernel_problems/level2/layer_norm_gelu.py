"""Layer normalization (learned scale and shift) followed by exact GELU.

Variants: shapes vary batch_size and seq_len; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
import torch.nn.functional as F
from torch import nn

batch_size = 16
seq_len = 64
hidden = 256


class Model(nn.Module):
    """gelu(layer_norm(x)) over the hidden dimension; scale and shift drawn at construction."""

    def __init__(self, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):  # (batch_size, seq_len, hidden) -> same
        return F.gelu(self.norm(x))


def get_inputs():
    return [torch.randn(batch_size, seq_len, hidden)]


def get_init_inputs():
    return [hidden]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 3, "seq_len": 5}, {"batch_size": 1, "seq_len": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
