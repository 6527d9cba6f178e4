"""2-D convolution without its own bias, plus a separate per-channel bias, then tanh.

Variants: shapes vary batch_size, height and width; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 4
in_channels = 16
out_channels = 32
kernel_size = 3
height = 32
width = 32


class Model(nn.Module):
    """tanh(conv2d(x) + bias), bias of shape (out_channels, 1, 1) broadcast over each map."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bias = nn.Parameter(0.1 * torch.randn(out_channels, 1, 1))

    def forward(self, x):  # (batch_size, in_channels, height, width) -> (batch_size, out_channels, height, width)
        return torch.tanh(self.conv(x) + self.bias)


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 1, "height": 21, "width": 8}, {"batch_size": 2, "height": 3, "width": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
