"""2-D convolution, batch normalization with running statistics (inference mode), then ReLU.

Variants: shapes vary batch_size, height and width; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
import torch.nn.functional as F
from torch import nn

batch_size = 4
in_channels = 16
out_channels = 32
kernel_size = 3
height = 32
width = 32


class Model(nn.Module):
    """relu(batch_norm(conv2d(x))), the norm always using its stored running mean and variance
    (as a deployed model does), whether or not the module is in training mode; the running
    statistics and the affine parameters are drawn at construction, so none is trivial."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):  # (batch_size, in_channels, height, width) -> (batch_size, out_channels, height, width)
        bn = self.bn
        y = F.batch_norm(self.conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                         training=False, eps=bn.eps)
        return torch.relu(y)


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 1, "height": 13, "width": 29}, {"batch_size": 2, "height": 1, "width": 1}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
