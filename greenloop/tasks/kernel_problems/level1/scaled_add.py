"""Sum of two tensors with the second scaled by a constant (an axpy).

Variants: shapes vary rows and cols; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

rows = 64
cols = 4096
alpha = 0.75


class Model(nn.Module):
    """x + alpha * y, elementwise, with alpha fixed at construction."""

    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, y):  # (rows, cols), (rows, cols) -> (rows, cols)
        return torch.add(x, y, alpha=self.alpha)


def get_inputs():
    return [torch.randn(rows, cols), torch.randn(rows, cols)]


def get_init_inputs():
    return [alpha]


LEVEL = 1
CATEGORY = "elementwise"
SHAPE_VARIANTS = [{"rows": 3, "cols": 777}, {"rows": 1, "cols": 5}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
