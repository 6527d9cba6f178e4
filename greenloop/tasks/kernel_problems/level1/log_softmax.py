"""Log-softmax over the feature dimension of a batch of rows.

Variants: shapes vary batch_size and dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 64
dim = 4096


class Model(nn.Module):
    """x - logsumexp(x) along each row."""

    def __init__(self):
        super().__init__()

    def forward(self, x):  # (batch_size, dim) -> (batch_size, dim)
        return torch.log_softmax(x, dim=1)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []


LEVEL = 1
CATEGORY = "softmax"
SHAPE_VARIANTS = [{"batch_size": 5, "dim": 1025}, {"batch_size": 1, "dim": 2}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
