"""Group normalization (learned scale and shift) followed by SiLU, as in a diffusion U-Net block.

Variants: shapes vary batch_size, height and width; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
import torch.nn.functional as F
from torch import nn

batch_size = 8
channels = 32
num_groups = 8
height = 24
width = 24


class Model(nn.Module):
    """silu(group_norm(x)); scale and shift drawn at construction."""

    def __init__(self, num_groups, channels):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):  # (batch_size, channels, height, width) -> same
        return F.silu(self.norm(x))


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [num_groups, channels]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 1, "height": 7, "width": 13}, {"batch_size": 2, "height": 1, "width": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
