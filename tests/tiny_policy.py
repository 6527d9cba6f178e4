"""Tiny models on disk for policy and model-server tests: a random greenloop GPT with its
tokenizer, and a random transformers Llama with a chat template. Built in well under a
second once torch is imported."""

from __future__ import annotations

from pathlib import Path

TEXTS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n",
         "class Point:\n    x: int = 0\n"] * 20
CHAT_TEMPLATE = ("{% for m in messages %}<|bos|>{{ m['role'] }}: {{ m['content'] }}<|sep|>{% endfor %}"
                 "{% if add_generation_prompt %}<|bos|>assistant: {% endif %}")


def save_tokenizer_folder(folder: Path) -> Path:
    from greenloop.text.tokenizer import save_tokenizer, train_tokenizer

    return save_tokenizer(train_tokenizer(TEXTS, vocab_size=512), folder)


def save_tiny_gpt(folder: Path, tokenizer_dir: Path) -> Path:
    """Untied output layer and a wide init, so greedy decoding does not just repeat a token."""
    import torch

    from greenloop.models import build_model
    from greenloop.text.tokenizer import load_tokenizer
    from greenloop.train.checkpoint import save_model_folder

    torch.manual_seed(0)
    vocab = load_tokenizer(tokenizer_dir).get_vocab_size()
    model = build_model("gpt", vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        tie_word_embeddings=False, initializer_range=0.3)
    save_model_folder(model, folder, str(tokenizer_dir))
    return folder


def save_tiny_llama(folder: Path, tokenizer_dir: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """A transformers LlamaForCausalLM folder with greenloop's tokenizer as a fast tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"), bos_token="<|bos|>",
                                        eos_token="<|eos|>", pad_token="<|pad|>", clean_up_tokenization_spaces=False)
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         initializer_range=0.3, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
