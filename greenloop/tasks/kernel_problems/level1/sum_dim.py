"""Sum over the middle dimension of a 3-D tensor, keeping that dimension.

Variants: shapes vary batch_size, dim1 and dim2; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 16
dim1 = 256
dim2 = 256
reduce_dim = 1


class Model(nn.Module):
    """x.sum(dim, keepdim=True)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):  # (batch_size, dim1, dim2) -> (batch_size, 1, dim2)
        return torch.sum(x, dim=self.dim, keepdim=True)


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [reduce_dim]


LEVEL = 1
CATEGORY = "reduction"
SHAPE_VARIANTS = [{"batch_size": 3, "dim1": 1000, "dim2": 17}, {"batch_size": 2, "dim1": 1, "dim2": 129}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
