"""Conformance tests run on every registered model (gpt, trm, hrm): shapes, training moves the
weights and the loss, save/load round trips, config validation, the lazy registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from greenloop.models import build_model, load_model, model_types
from greenloop.registry import RegistryError

VOCAB = 64
TINY = {
    "gpt": dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
    "trm": dict(vocab_size=VOCAB, hidden_size=32, n_layers=1, num_attention_heads=4, n_latent=2, n_deep=2,
                supervision_steps=4, grid_lines=8, grid_width=8),
    "hrm": dict(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, h_layers=1, l_layers=1,
                h_cycles=2, l_cycles=2, halt_max_steps=2),
}
MODELS = sorted(TINY)
# Initial states are only in the graph when the first recursion has gradients (n_deep=1 or N*T=1).
NOT_TRAINED_BY_DEEP_RECURSION = {"y_init", "z_init", "h_init", "l_init", "hint_vector"}  # hint_vector: only with parser hints


def tiny_model(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(name, **{**TINY[name], **overrides})


def fit(model, steps: int, lr: float = 3e-3, **batch):
    """`steps` AdamW updates on one fixed batch; returns the last step's output."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return out


def example_batch(name: str, seed: int = 0):
    """(input_ids, labels) of the shape each model takes; labels follow each model's convention."""
    generator = torch.Generator().manual_seed(seed)
    if name == "trm":  # 4 grids of 5 lines x 6 columns, the last two columns pad
        ids = torch.randint(5, VOCAB, (4, 5, 6), generator=generator)
        ids[:, :, 4:] = 0
        fixed = ids.clone()
        fixed[:, :, 0] = (ids[:, :, 0] + 1) % VOCAB  # a "repair": change the first token of each line
        return ids, fixed
    ids = torch.randint(5, VOCAB, (4, 12), generator=generator)
    return ids, ids  # HF convention: labels = input_ids


def config_fields(config) -> dict:
    return {key: value for key, value in config.to_dict().items() if "name_or_path" not in key}


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes(name):
    model = tiny_model(name)
    ids, labels = example_batch(name)
    out = model(input_ids=ids, labels=labels)
    assert out.logits.shape == (*ids.shape, VOCAB)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    if name in ("trm", "hrm"):
        assert out.q_halt.shape == (ids.shape[0],)
        assert out.halted.shape == (ids.shape[0],) and out.halted.dtype == torch.bool
    assert model.num_parameters() > 0


@pytest.mark.parametrize("name", MODELS)
def test_optimizer_steps_change_the_parameters(name):
    model = tiny_model(name)
    ids, labels = example_batch(name)
    before = {key: value.clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
    unchanged = {key for key, value in model.named_parameters() if torch.equal(before[key], value)}
    assert unchanged <= NOT_TRAINED_BY_DEEP_RECURSION, unchanged


@pytest.mark.parametrize("name", MODELS)
def test_loss_falls_on_a_fixed_batch(name):
    model = tiny_model(name)
    ids, labels = example_batch(name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        # The cross-entropy part: the halting BCE of TRM and HRM rises for a while once answers
        # turn exactly right, until the halting head (which starts at "never halt") catches up.
        losses.append((out.lm_loss if name in ("trm", "hrm") else out.loss).item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_give_identical_outputs(name, tmp_path):
    model = tiny_model(name).eval()
    ids, _ = example_batch(name)
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert not any(name.endswith((".bin", ".pt")) for name in files)

    loaded = load_model(tmp_path).eval()
    assert type(loaded) is type(model)
    assert config_fields(loaded.config) == config_fields(model.config)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize("name", MODELS)
def test_auto_classes_know_the_model(name, tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    model = tiny_model(name)
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is type(model.config)
    assert type(AutoModel.from_pretrained(tmp_path)) is type(model)
    if name in ("gpt", "hrm"):
        assert type(AutoModelForCausalLM.from_pretrained(tmp_path)) is type(model)


@pytest.mark.parametrize(
    "name, overrides, field",
    [
        ("gpt", {"hidden_size": 30}, "hidden_size"),  # 30 is not 4 heads
        ("gpt", {"hidden_size": 36}, "hidden_size"),  # heads of 9: RoPE needs an even size
        ("gpt", {"dropout": 1.5}, "dropout"),
        ("gpt", {"pad_token_id": VOCAB}, "pad_token_id"),
        ("gpt", {"num_hidden_layers": 0}, "num_hidden_layers"),
        ("trm", {"hidden_size": 30}, "hidden_size"),
        ("trm", {"n_latent": 0}, "n_latent"),
        ("trm", {"n_deep": 0}, "n_deep"),
        ("trm", {"grid_width": 0}, "grid_width"),
        ("trm", {"halt_loss_weight": -1.0}, "halt_loss_weight"),
        ("hrm", {"hidden_size": 36}, "hidden_size"),
        ("hrm", {"h_cycles": 0}, "h_cycles"),
        ("hrm", {"halt_max_steps": 0}, "halt_max_steps"),
        ("hrm", {"halt_exploration_prob": 2.0}, "halt_exploration_prob"),
    ],
)
def test_config_validation_names_the_field(name, overrides, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        tiny_model(name, **overrides)


def test_registry_lists_the_models_and_suggests_on_typos():
    assert model_types.names() == ["gpt", "hrm", "trm"]
    with pytest.raises(RegistryError, match="Did you mean 'gpt'"):
        build_model("gtp")


def test_load_model_needs_a_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)


def test_importing_the_package_does_not_import_torch():
    code = (
        "import sys, greenloop, greenloop.models\n"
        "assert greenloop.models.model_types.names() == ['gpt', 'hrm', 'trm']\n"
        "heavy = [name for name in ('torch', 'transformers') if name in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
