"""Product of a matrix and a column vector.

Variants: shapes vary M and K; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

M = 1024
K = 1024


class Model(nn.Module):
    """A @ x, with x a (K, 1) column."""

    def __init__(self):
        super().__init__()

    def forward(self, A, x):  # (M, K), (K, 1) -> (M, 1)
        return torch.matmul(A, x)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, 1)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "matmul"
SHAPE_VARIANTS = [{"M": 100, "K": 1001}, {"M": 1, "K": 7}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
