"""A TRM that answers with edits (`edits=True`): it starts by changing nothing, learns an
insertion, round-trips through save/load, and exports to ONNX with its insertion outputs;
with `single_change=True` it learns insertions and substitutions and never changes more
than one place."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from greenloop.models import load_model
from greenloop.models.trm import TRMConfig
from tests.unit.test_grid_edits import grid
from tests.unit.test_models import fit, tiny_model


def insertion_batch():
    """Two programs, each missing one token that its fix inserts mid-line."""
    source = torch.cat([grid([[7, 8, 9], [10, 11]], 8), grid([[20, 21], [22, 23, 24]], 8)])
    target = torch.cat([grid([[7, 8, 12, 9], [10, 11]], 8), grid([[20, 21], [22, 13, 23, 24]], 8)])
    return source, target


def test_the_untrained_model_inserts_nothing():
    model = tiny_model("trm", edits=True).eval()
    source, _ = insertion_batch()
    with torch.no_grad():
        out = model(input_ids=source)
    cells = source.shape[1] * source.shape[2]
    assert out.insert_where.shape == (source.shape[0], cells + 1)
    assert bool((out.insert_where.argmax(-1) == cells).all())  # "nowhere"
    assert not bool(out.insertions.ne(0).any())


def test_a_few_steps_teach_an_insertion_and_repair_writes_it():
    model = tiny_model("trm", edits=True, n_deep=1)
    source, target = insertion_batch()
    with torch.no_grad():
        first = float(model(input_ids=source, labels=target).lm_loss)
    out = fit(model, 150, input_ids=source, labels=target)
    assert float(out.lm_loss) < first / 10
    fixed, _ = model.eval().repair(source, max_steps=1)
    assert torch.equal(fixed, target)


def test_save_and_load_give_the_same_edits(tmp_path):
    model = tiny_model("trm", edits=True).eval()
    with torch.no_grad():  # live insertion heads, so there is something to compare
        model.edit_heads.at.weight.normal_(0.0, 1.0)
        model.edit_heads.token.weight.normal_(0.0, 0.5)
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    source, _ = insertion_batch()
    with torch.no_grad():
        assert torch.equal(model.repair(source)[0], loaded.repair(source)[0])
        for a, b in zip(model.forward_fixed(source), loaded.forward_fixed(source)):
            torch.testing.assert_close(a, b)


def test_a_config_saved_with_the_replaced_copy_shift_is_refused_clearly():
    with pytest.raises(ValueError, match="^copy_shift: was replaced by edits=True"):
        TRMConfig(copy_shift=True)
    assert not hasattr(TRMConfig(copy_shift=False), "copy_shift")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_export_carries_the_insertion_outputs(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from greenloop.train.export import compare_with_torch, export_onnx

    model = tiny_model("trm", edits=True).eval()
    with torch.no_grad():
        model.edit_heads.at.weight.normal_(0.0, 1.0)
        model.edit_heads.token.weight.normal_(0.0, 0.5)
    traced = export_onnx(model, tmp_path / "model.onnx", steps=2)
    check = compare_with_torch(traced["module"], model, tmp_path / "model.onnx", traced["check_shape"])
    assert check["max_abs_diff"] < 1e-3 and check["top1_agreement"] == 1.0
    import onnx

    names = [o.name for o in onnx.load(str(tmp_path / "model.onnx")).graph.output]
    assert names == ["logits", "q_halt", "insert_where", "insert_logits"]


def substitution_batch():
    """Two programs: one missing a token, one with a token to replace (`)` -> `))`-like)."""
    source = torch.cat([grid([[7, 8, 9], [10, 11]], 8), grid([[20, 21], [22, 23, 24]], 8)])
    target = torch.cat([grid([[7, 8, 12, 9], [10, 11]], 8), grid([[20, 21], [22, 23, 30]], 8)])
    return source, target


def test_single_change_learns_an_insertion_and_a_substitution():
    model = tiny_model("trm", edits=True, single_change=True, n_deep=1)
    source, target = substitution_batch()
    fit(model, 150, input_ids=source, labels=target)
    fixed, _ = model.eval().repair(source, max_steps=1)
    assert torch.equal(fixed, target)


def test_single_change_changes_at_most_one_place_whatever_the_weights():
    model = tiny_model("trm", edits=True, single_change=True).eval()
    with torch.no_grad():  # a pointer that always picks a cell, and outputs that are noise
        model.edit_heads.nowhere.bias.fill_(-1e3)
        model.lm_head.weight.normal_(0.0, 5.0)
    source, _ = substitution_batch()
    with torch.no_grad():
        out = model(input_ids=source)
    changed = (out.outputs != source) | (out.insertions != 0)
    assert changed.flatten(1).sum(-1).le(1).all()
    assert changed.flatten(1).sum(-1).eq(1).any()  # and it does change something


def test_single_change_needs_edits():
    with pytest.raises(ValueError, match="^single_change:"):
        TRMConfig(single_change=True)
