"""Training: models from scratch (`pretrain`), and their export.

- `config`: `PretrainConfig`, the one dataclass behind `greenloop train pretrain`.
- `batches`: deterministic batches (a batch is a function of the seed and the step, so a
  resumed run sees what an uninterrupted one would) from `greenloop text tokenize` folders;
  grid batches are cropped to their content.
- `curriculum`: stages over the difficulty buckets, and when to advance.
- `checkpoint`: atomic checkpoints (weights, optimizer, RNG, progress) and resume.
- `pretrain`: the loop (AdamW, warmup + cosine, clipping, deep supervision for recursive
  models, validation, best-by-validation, TensorBoard, a progress bar).

Nothing here is imported by `import greenloop`; torch is needed only when a run starts.
"""
