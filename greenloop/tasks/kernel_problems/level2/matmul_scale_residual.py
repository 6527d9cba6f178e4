"""Fully connected layer whose output is scaled and added to a residual input.

Variants: shapes vary batch_size; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 128
in_features = 1024
out_features = 512
scale = 0.5


class Model(nn.Module):
    """residual + scale * (x @ W.T + b)."""

    def __init__(self, in_features, out_features, scale):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale

    def forward(self, x, residual):  # (batch_size, in_features), (batch_size, out_features) -> (batch_size, out_features)
        return residual + self.scale * self.linear(x)


def get_inputs():
    return [torch.randn(batch_size, in_features), torch.randn(batch_size, out_features)]


def get_init_inputs():
    return [in_features, out_features, scale]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 9}, {"batch_size": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
