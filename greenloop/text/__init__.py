"""Text: turning code into token ids and back, for the models greenloop trains from scratch.

What this package owns:

- `tokenizer`: training a byte-level BPE tokenizer on code (every Python keyword one
  token, fixed special-token ids), saving it so `transformers` loads it, its fingerprint;
- `grid`: a program as a `lines x width` grid of token ids (one source line per row), and
  back;
- `tokenize_data`: sharded, resumable tokenization of a `greenloop data split` folder (grid
  pairs) or of code and tasks (a flat stream for causal language models);
- `datasets`: the readers trainers use on those outputs (`GridData`, `TokenStream`).

Nothing heavy is imported here; `tokenizers`, `pyarrow` and `numpy` load with the module
that needs them.
"""
