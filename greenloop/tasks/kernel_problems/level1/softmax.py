"""Softmax over the last dimension of a batch of rows.

Variants: shapes vary batch_size and dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 64
dim = 4096


class Model(nn.Module):
    """exp(x) / sum(exp(x)) along each row."""

    def __init__(self):
        super().__init__()

    def forward(self, x):  # (batch_size, dim) -> (batch_size, dim)
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "softmax"
SHAPE_VARIANTS = [{"batch_size": 7, "dim": 333}, {"batch_size": 2, "dim": 10000}, {"batch_size": 1, "dim": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
