"""TRM: cropped grids, the deep-supervision protocol the trainer runs, halting and repair(),
where gradients flow, and ONNX export of the fixed-step forward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from greenloop.models.trm import TRMFixedSteps, TRMState
from tests.unit.test_models import VOCAB, example_batch, fit, tiny_model


def grid(B, L, W, content_width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, L, W), generator=generator)
    ids[:, :, content_width:] = 0
    return ids


def set_halting(model, logit: float) -> None:
    """Make q_halt a constant: > 0 halts at once, < 0 never halts."""
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.fill_(logit)


@pytest.mark.parametrize("shape", [(2, 1, 1), (2, 3, 5), (1, 8, 8), (3, 7, 2)])
def test_cropped_grids_of_any_size_up_to_the_configured_one(shape):
    model = tiny_model("trm")
    ids = grid(*shape, content_width=shape[2])
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (*shape, VOCAB)
    assert out.state.y.shape == (shape[0], shape[1] * shape[2], 32)


@pytest.mark.parametrize("shape, field", [((1, 9, 4), "input_ids"), ((1, 4, 9), "input_ids")])
def test_grids_larger_than_the_config_are_refused(shape, field):
    model = tiny_model("trm")
    with pytest.raises(ValueError, match=f"^{field}:"):
        model(input_ids=grid(*shape, content_width=2))


def test_positions_are_line_and_column_so_crops_agree_with_padded_grids():
    # With pad keys masked, pad cells cannot influence content cells: the same program on a
    # cropped grid and on a larger padded grid must give the same logits on its cells.
    model = tiny_model("trm", mask_pad_keys=True).eval()
    small = grid(2, 3, 4, content_width=3)
    large = torch.zeros(2, 6, 7, dtype=torch.long)
    large[:, :3, :4] = small
    with torch.no_grad():
        a = model.forward_fixed(small, steps=2)[0]
        b = model.forward_fixed(large, steps=2)[0][:, :3, :4]
    content = (small != 0)
    torch.testing.assert_close(a[content], b[content], atol=1e-5, rtol=1e-5)


def test_the_trainers_deep_supervision_protocol():
    model = tiny_model("trm", supervision_steps=3)
    ids, target = example_batch("trm")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = model.initial_state(ids)
    assert isinstance(state, TRMState)
    steps_run = 0
    for _ in range(model.config.supervision_steps):
        out = model(input_ids=ids, labels=target, state=state)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        state = out.state
        steps_run += 1
        assert not state.y.requires_grad and not state.z.requires_grad  # no graph carried over
        assert state.y.grad_fn is None and state.z.grad_fn is None
        assert torch.equal(state.steps, torch.full((ids.shape[0],), steps_run))
        assert out.lm_loss is not None and out.halt_loss is not None
        if out.halted.all():
            break
    assert steps_run == 3 and out.halted.all()  # the q-head starts at "never halt": halted by the step limit


def test_halting_stops_the_loop_early():
    model = tiny_model("trm")
    set_halting(model, 10.0)
    ids, target = example_batch("trm")
    out = model(input_ids=ids, labels=target, state=model.initial_state(ids))
    assert out.halted.all()


def test_the_halting_head_learns_to_halt_when_the_answer_is_right():
    model = tiny_model("trm")
    ids, target = example_batch("trm")
    fit(model, 120, input_ids=ids, labels=target)
    with torch.no_grad():
        out = model(input_ids=ids, labels=target)
    assert torch.equal(out.logits.argmax(-1), target)
    assert (out.q_halt > 0).all() and out.halted.all()


def test_gradients_flow_through_the_last_deep_recursion_only():
    model = tiny_model("trm", n_latent=3, n_deep=3)
    calls_with_grad = []
    model.net[0].register_forward_hook(lambda *_: calls_with_grad.append(torch.is_grad_enabled()))
    ids, target = example_batch("trm")
    model(input_ids=ids, labels=target).loss.backward()
    per_recursion = model.config.n_latent + 1  # n z-updates and one y-update
    assert len(calls_with_grad) == model.config.n_deep * per_recursion
    assert calls_with_grad == [False] * 2 * per_recursion + [True] * per_recursion
    assert model.embed_tokens.weight.grad.abs().sum() > 0
    assert model.y_init.grad is None  # only in the no-grad recursions when n_deep > 1


def test_labels_minus_100_are_ignored():
    model = tiny_model("trm").eval()
    ids, target = example_batch("trm")
    ignored = target.clone()
    ignored[:, :, 4:] = -100
    with torch.no_grad():
        out = model(input_ids=ids, labels=ignored)
        logits = out.logits[:, :, :4].reshape(-1, VOCAB)
        expected = torch.nn.functional.cross_entropy(logits, target[:, :, :4].reshape(-1))
    torch.testing.assert_close(out.lm_loss, expected)


def test_repair_returns_ids_and_steps_and_stops_when_all_halted():
    model = tiny_model("trm").eval()
    ids, _ = example_batch("trm")
    set_halting(model, 10.0)
    fixed, steps = model.repair(ids)
    assert fixed.shape == ids.shape and fixed.dtype == torch.long
    assert torch.equal(steps, torch.ones(ids.shape[0], dtype=torch.long))

    set_halting(model, -10.0)
    fixed, steps = model.repair(ids, max_steps=3)
    assert torch.equal(steps, torch.full((ids.shape[0],), 3))
    with torch.no_grad():
        assert torch.equal(fixed, model.forward_fixed(ids, steps=3)[0].argmax(-1))


def test_repair_keeps_each_examples_answer_from_its_halting_step():
    model = tiny_model("trm").eval()
    ids, _ = example_batch("trm")
    with torch.no_grad():  # example 0 halts at once, the others never
        model.q_head.weight.zero_()
        model.q_head.bias.fill_(-10.0)
    original_heads = model.heads

    def heads(y, input_ids):
        logits, q_halt, gate = original_heads(y, input_ids)
        return logits, q_halt.index_fill(0, torch.tensor([0]), 10.0), gate

    model.heads = heads
    fixed, steps = model.repair(ids, max_steps=2)
    assert steps.tolist() == [1, 2, 2, 2]
    with torch.no_grad():
        assert torch.equal(fixed[0], model.forward_fixed(ids, steps=1)[0].argmax(-1)[0])
        assert torch.equal(fixed[1:], model.forward_fixed(ids, steps=2)[0].argmax(-1)[1:])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("dynamo", [True, False])
def test_onnx_export_of_fixed_steps_matches_pytorch(tmp_path, dynamo):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    model = tiny_model("trm", mask_pad_keys=True).eval()
    with torch.no_grad():  # a live halting head, so q_halt is worth comparing
        model.q_head.weight.normal_(0.0, 0.5)
    exported = TRMFixedSteps(model, steps=2).eval()
    path = tmp_path / "trm.onnx"
    names = dict(input_names=["input_ids"], output_names=["logits", "q_halt"])
    if dynamo:
        dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("lines", max=8), 2: torch.export.Dim("columns", max=8)}
        torch.onnx.export(exported, (grid(2, 5, 6, 4),), str(path), dynamo=True, dynamic_shapes=(dims,), **names)
    else:
        axes = {"input_ids": {0: "batch", 1: "lines", 2: "columns"}, "logits": {0: "batch", 1: "lines", 2: "columns"},
                "q_halt": {0: "batch"}}
        torch.onnx.export(exported, (grid(2, 5, 6, 4),), str(path), dynamo=False, dynamic_axes=axes, **names)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 5, 6), (3, 7, 4)]:
        ids = grid(*shape, content_width=3, seed=1)
        logits, q_halt = session.run(None, {"input_ids": ids.numpy()})
        with torch.no_grad():
            expected_logits, expected_q = exported(ids)
        torch.testing.assert_close(torch.from_numpy(logits), expected_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(q_halt), expected_q, atol=1e-4, rtol=1e-4)
