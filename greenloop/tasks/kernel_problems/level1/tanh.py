"""Hyperbolic tangent of every element of a batch of activation rows.

Variants: shapes vary batch_size and dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
dim = 16384


class Model(nn.Module):
    """tanh(x), elementwise."""

    def __init__(self):
        super().__init__()

    def forward(self, x):  # (batch_size, dim) -> (batch_size, dim)
        return torch.tanh(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "elementwise"
SHAPE_VARIANTS = [{"batch_size": 2, "dim": 4097}, {"batch_size": 9, "dim": 31}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
