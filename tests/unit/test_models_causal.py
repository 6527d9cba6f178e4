"""The language models (gpt, and hrm with causal=True): causality, padding, the two label
conventions, generate(), and ONNX export of the GPT."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.unit.test_models import VOCAB, tiny_model

CAUSAL = ["gpt", "hrm"]
EOS = 2


def prompt(seed: int = 0, shape=(2, 10)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, VOCAB, shape, generator=generator)  # no pad, bos or eos inside


def logits_of(model, ids, **kwargs):
    with torch.no_grad():
        extra = {"segments": model.config.halt_max_steps} if hasattr(model.config, "halt_max_steps") else {}
        return model(input_ids=ids, **extra, **kwargs).logits


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("t", [0, 4, 8])
def test_future_tokens_do_not_change_past_logits(name, t):
    model = tiny_model(name).eval()
    ids = prompt()
    changed = ids.clone()
    changed[:, t + 1:] = prompt(seed=1)[:, t + 1:]
    assert not torch.equal(changed, ids)
    before, after = logits_of(model, ids), logits_of(model, changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


@pytest.mark.parametrize("name", CAUSAL)
def test_left_padding_changes_nothing_for_the_real_tokens(name):
    model = tiny_model(name).eval()
    ids = prompt(shape=(1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = (padded != 0).long()
    alone = logits_of(model, ids)
    in_batch = logits_of(model, padded, attention_mask=mask)
    torch.testing.assert_close(in_batch[:, 3:], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CAUSAL)
def test_labels_are_shifted_inside_and_targets_are_not(name):
    model = tiny_model(name).eval()
    ids = prompt()
    targets = torch.cat([ids[:, 1:], torch.full((ids.shape[0], 1), -100)], dim=1)
    with torch.no_grad():
        from_labels = model(input_ids=ids, labels=ids).loss
        from_targets = model(input_ids=ids, targets=targets).loss
    torch.testing.assert_close(from_labels, from_targets)
    with pytest.raises(ValueError, match="not both"):
        model(input_ids=ids, labels=ids, targets=targets)


@pytest.mark.parametrize("name", CAUSAL)
def test_greedy_generation_is_deterministic_and_stops_at_max_new_tokens(name):
    model = tiny_model(name).eval()
    ids = prompt(shape=(1, 5))
    first = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)
    second = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert first.shape == (1, 11)
    assert torch.equal(first, second)
    assert torch.equal(first[:, :5], ids)
    # greedy decoding is the argmax of the model's own logits
    assert first[0, 5].item() == logits_of(model, ids)[0, -1].argmax().item()


@pytest.mark.parametrize("name", CAUSAL)
def test_generation_stops_at_eos(name):
    model = tiny_model(name).eval()
    ids = prompt(shape=(1, 5))
    free = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)
    stop_token = free[0, 6].item()  # make the second generated token the end of sequence
    stopped = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=stop_token)
    first_stop = (free[0, 5:] == stop_token).nonzero()[0].item()
    assert stopped.shape[1] == 5 + first_stop + 1
    assert stopped[0, -1].item() == stop_token


@pytest.mark.parametrize("name", CAUSAL)
def test_sampling_with_temperature_and_top_p(name):
    model = tiny_model(name).eval()
    ids = prompt(shape=(2, 4))
    torch.manual_seed(0)
    sampled = model.generate(ids, max_new_tokens=5, do_sample=True, temperature=0.8, top_p=0.9)
    assert sampled.shape[0] == 2 and 5 <= sampled.shape[1] <= 9
    assert 0 <= sampled.min().item() and sampled.max().item() < VOCAB


def test_gpt_kv_cache_generates_what_full_recomputation_generates():
    model = tiny_model("gpt").eval()
    ids = prompt(shape=(2, 6))
    ids[0, :2] = 0  # the first row left-padded
    mask = (ids != 0).long()
    cached = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=None)
    uncached = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=None,
                              use_cache=False)
    assert torch.equal(cached, uncached)


def test_growing_cache_matches_transformers_dynamic_cache_and_grows_in_place():
    from transformers.cache_utils import DynamicCache

    from greenloop.models.kv_cache import growing_cache

    model = tiny_model("gpt").eval()
    ids = prompt(shape=(3, 5))
    cache = growing_cache()
    ours = model.generate(ids, max_new_tokens=70, do_sample=False, eos_token_id=None, past_key_values=cache)
    theirs = model.generate(ids, max_new_tokens=70, do_sample=False, eos_token_id=None, past_key_values=DynamicCache())
    assert torch.equal(ours, theirs)
    layer = cache.layers[0]
    assert layer.get_seq_length() == 5 + 70 - 1 == layer.keys.shape[-2]
    assert layer._keys.shape[-2] >= layer.length and layer._keys.shape[-2] < 2 * 75  # doubled once, not per step
    layer.crop(-4)
    assert layer.get_seq_length() == 70 and layer.keys.shape[-2] == 70


def test_growing_layer_batch_operations_match_dynamic_layer():
    from transformers.cache_utils import DynamicLayer

    from greenloop.models.kv_cache import GrowingLayer

    keys, values = torch.randn(4, 2, 5, 8), torch.randn(4, 2, 5, 8)
    for operation in (lambda layer: layer.batch_select_indices(torch.tensor([2, 0])),
                      lambda layer: layer.batch_repeat_interleave(2),
                      lambda layer: layer.reorder_cache(torch.tensor([3, 2, 1, 0]))):
        ours, theirs = GrowingLayer(), DynamicLayer()
        for layer in (ours, theirs):
            layer.update(keys, values)
            operation(layer)
            rows = layer.keys.shape[0]
            layer.update(keys[:1, :, :1].expand(rows, -1, -1, -1), values[:1, :, :1].expand(rows, -1, -1, -1))
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


def test_hrm_generation_runs_every_segment():
    model = tiny_model("hrm", halt_max_steps=3).eval()
    ids = prompt(shape=(1, 5))
    out = model.generate(ids, max_new_tokens=1, do_sample=False, eos_token_id=None)
    expected = logits_of(model, ids)[0, -1].argmax().item()  # segments=halt_max_steps
    assert out[0, -1].item() == expected


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_gpt_onnx_export_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class LogitsOnly(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids=input_ids).logits

    model = LogitsOnly(tiny_model("gpt").eval())
    ids = prompt(shape=(2, 7))
    path = tmp_path / "gpt.onnx"
    torch.onnx.export(model, (ids,), str(path), dynamo=False, input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "logits": {0: "batch", 1: "tokens"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 7), (3, 11)]:
        other = prompt(seed=2, shape=shape)
        (got,) = session.run(None, {"input_ids": other.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), model(other), atol=1e-4, rtol=1e-4)
