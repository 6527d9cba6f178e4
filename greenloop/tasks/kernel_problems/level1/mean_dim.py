"""Mean over the last dimension of a 3-D tensor, dropping that dimension.

Variants: shapes vary batch_size, dim1 and dim2; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
dim1 = 256
dim2 = 256
reduce_dim = 2


class Model(nn.Module):
    """x.mean(dim)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):  # (batch_size, dim1, dim2) -> (batch_size, dim1)
        return torch.mean(x, dim=self.dim)


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]


LEVEL = 1
CATEGORY = "reduction"
SHAPE_VARIANTS = [{"batch_size": 5, "dim1": 33, "dim2": 1001}, {"batch_size": 1, "dim1": 2, "dim2": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
