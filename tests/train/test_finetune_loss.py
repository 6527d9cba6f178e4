"""The sleep trainer's loss: completion tokens only by default; with `prompt_weight`,
the prompt's tokens too, each part a mean of its own tokens."""

import pytest

from greenloop.train.finetune import IGNORE, FinetuneConfig, _encoder, _loss, _tensors
from tests.tiny_policy import save_tiny_gpt, save_tokenizer_folder


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    from greenloop.models import load_model

    root = tmp_path_factory.mktemp("ft")
    folder = save_tiny_gpt(root / "gpt", save_tokenizer_folder(root / "tok"))
    encode, pad = _encoder(folder)
    examples = [encode("def add(a, b):\n", "    return a + b\n"), encode("for i in range(10):\n", "    print(i)\n"),
                encode("class Point:\n    x: int = 0\n", "pass\n")]
    return load_model(folder).eval(), _tensors(examples, [0, 1, 2], pad)


def test_prompt_weight_adds_the_prompt_tokens_mean_loss_to_the_completions(model_and_batch):
    import torch

    model, (ids, labels, mask) = model_and_batch
    prompt_labels = torch.where((labels == IGNORE) & mask.bool(), ids, torch.full_like(ids, IGNORE))
    with torch.no_grad():
        completion = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        prompt = model(input_ids=ids, attention_mask=mask, labels=prompt_labels).loss
        assert torch.allclose(_loss(model, ids, labels, mask, 0.0), completion)
        assert torch.allclose(_loss(model, ids, labels, mask, 0.5), completion + 0.5 * prompt, atol=1e-5)
    assert prompt.item() > 0 and not torch.allclose(prompt, completion)


def test_a_negative_prompt_weight_is_refused():
    with pytest.raises(ValueError, match="prompt_weight"):
        FinetuneConfig(prompt_weight=-0.1)
