"""Fully connected layer (weights plus bias) followed by ReLU.

Variants: shapes vary batch_size; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 128
in_features = 1024
out_features = 512


class Model(nn.Module):
    """relu(x @ W.T + b)."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):  # (batch_size, in_features) -> (batch_size, out_features)
        return torch.relu(self.linear(x))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 33}, {"batch_size": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
