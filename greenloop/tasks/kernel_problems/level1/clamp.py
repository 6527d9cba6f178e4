"""Clamp of every element of a batch of rows into a fixed interval.

Variants: shapes vary batch_size and dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
dim = 16384
min_value = -0.5
max_value = 1.25


class Model(nn.Module):
    """min(max(x, min_value), max_value), elementwise."""

    def __init__(self, min_value, max_value):
        super().__init__()
        self.min_value = min_value
        self.max_value = max_value

    def forward(self, x):  # (batch_size, dim) -> (batch_size, dim)
        return torch.clamp(x, self.min_value, self.max_value)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return [min_value, max_value]


LEVEL = 1
CATEGORY = "elementwise"
SHAPE_VARIANTS = [{"batch_size": 4, "dim": 1023}, {"batch_size": 1, "dim": 2}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
