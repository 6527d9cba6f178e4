"""Fully connected layer followed by exact GELU, as in a transformer MLP's first half.

Variants: shapes vary batch_size; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
import torch.nn.functional as F
from torch import nn

batch_size = 128
in_features = 512
out_features = 1024


class Model(nn.Module):
    """gelu(x @ W.T + b), GELU in its erf form."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):  # (batch_size, in_features) -> (batch_size, out_features)
        return F.gelu(self.linear(x))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 17}, {"batch_size": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
