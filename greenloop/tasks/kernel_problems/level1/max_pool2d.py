"""2-D max pooling, 3x3 window, stride 2, padding 1.

Variants: shapes vary batch_size, height and width; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 8
channels = 16
height = 64
width = 64
kernel_size = 3
stride = 2
padding = 1


class Model(nn.Module):
    """nn.MaxPool2d(kernel_size, stride, padding); padded cells never win."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, stride=stride, padding=padding)

    def forward(self, x):  # (batch_size, channels, height, width) -> (batch_size, channels, height // 2, width // 2)
        return self.pool(x)


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [kernel_size, stride, padding]


LEVEL = 1
CATEGORY = "pool"
SHAPE_VARIANTS = [{"batch_size": 2, "height": 15, "width": 22}, {"batch_size": 1, "height": 2, "width": 3}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
