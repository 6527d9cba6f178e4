"""Product of two square matrices.

Variants: shapes vary N; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

N = 384


class Model(nn.Module):
    """A @ B."""

    def __init__(self):
        super().__init__()

    def forward(self, A, B):  # (N, N), (N, N) -> (N, N)
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "matmul"
SHAPE_VARIANTS = [{"N": 129}, {"N": 31}, {"N": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
