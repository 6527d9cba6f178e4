"""2-D average pooling, 2x2 window, stride 2, no padding.

Variants: shapes vary batch_size, height and width; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 8
channels = 32
height = 64
width = 64
kernel_size = 2


class Model(nn.Module):
    """nn.AvgPool2d(kernel_size); an odd last row or column is dropped."""

    def __init__(self, kernel_size):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size)

    def forward(self, x):  # (batch_size, channels, height, width) -> (batch_size, channels, height // 2, width // 2)
        return self.pool(x)


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [kernel_size]


LEVEL = 1
CATEGORY = "pool"
SHAPE_VARIANTS = [{"batch_size": 3, "height": 17, "width": 9}, {"batch_size": 1, "height": 2, "width": 2}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
