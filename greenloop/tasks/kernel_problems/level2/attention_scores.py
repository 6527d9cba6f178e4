"""Attention weights: softmax over keys of query-key dot products scaled by 1/sqrt(head_dim).

Variants: shapes vary batch_size, seq_len and head_dim; dtypes float32 and float64; edges zeros, large, negative.
"""

import torch
from torch import nn

batch_size = 2
num_heads = 4
seq_len = 128
head_dim = 64


class Model(nn.Module):
    """softmax(Q @ K^T / sqrt(d)) along the key dimension (no mask, no values)."""

    def __init__(self):
        super().__init__()

    def forward(self, q, k):  # (B, H, T, d), (B, H, T, d) -> (B, H, T, T)
        scores = torch.matmul(q, k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        return torch.softmax(scores, dim=-1)


def get_inputs():
    shape = (batch_size, num_heads, seq_len, head_dim)
    return [torch.randn(shape), torch.randn(shape)]


def get_init_inputs():
    return []


LEVEL = 2
CATEGORY = "fused"
SHAPE_VARIANTS = [{"batch_size": 1, "seq_len": 77, "head_dim": 32}, {"batch_size": 3, "seq_len": 1, "head_dim": 8}]
DTYPES = ["float32", "float64"]
EDGE_CASES = ["zeros", "large", "negative"]
