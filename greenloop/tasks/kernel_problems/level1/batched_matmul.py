"""Batched matrix product of two stacks of matrices.

Variants: shapes vary batch_size, m, k and n; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
m = 128
k = 256
n = 64


class Model(nn.Module):
    """A[i] @ B[i] for every i in the batch."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):  # (batch_size, m, k), (batch_size, k, n) -> (batch_size, m, n)
        return torch.bmm(A, B)


def get_inputs():
    return [torch.randn(batch_size, m, k), torch.randn(batch_size, k, n)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "matmul"
SHAPE_VARIANTS = [{"batch_size": 3, "m": 17, "k": 100, "n": 33}, {"batch_size": 1, "m": 1, "k": 1, "n": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
