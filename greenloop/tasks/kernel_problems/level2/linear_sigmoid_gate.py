"""Input gated by the sigmoid of a fully connected layer of itself (a swish-style gate).

Variants: shapes vary batch_size; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 128
features = 1024


class Model(nn.Module):
    """x * sigmoid(x @ W.T + b), with W square so the gate matches x."""

    def __init__(self, features):
        super().__init__()
        self.gate = nn.Linear(features, features)

    def forward(self, x):  # (batch_size, features) -> (batch_size, features)
        return x * torch.sigmoid(self.gate(x))


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return [features]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 7}, {"batch_size": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
