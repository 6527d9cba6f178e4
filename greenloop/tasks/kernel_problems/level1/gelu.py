"""GELU (exact, erf form) of every element of a batch of activation rows.

Variants: shapes vary batch_size and dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
import torch.nn.functional as F
from torch import nn

batch_size = 16
dim = 16384


class Model(nn.Module):
    """x * Phi(x), elementwise, with the exact normal CDF (not the tanh approximation)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):  # (batch_size, dim) -> (batch_size, dim)
        return F.gelu(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "elementwise"
SHAPE_VARIANTS = [{"batch_size": 5, "dim": 999}, {"batch_size": 1, "dim": 3}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
