"""greenloop's models, trained from scratch, each one readable file:

    gpt  tiny_gpt.TinyGPTForCausalLM  a pre-norm causal transformer, the baseline
    trm  trm.TRMForRepair             Tiny Recursive Model: repairs a program on a token grid
    hrm  hrm.HRMForCausalLM           Hierarchical Reasoning Model: two recurrent modules, ACT

All are Hugging Face `PreTrainedModel`s: `save_pretrained(folder)` writes config.json and
model.safetensors, `from_pretrained(folder)` restores them, and importing a model's module
registers it with AutoConfig / AutoModel (and AutoModelForCausalLM for gpt and hrm).

Importing this package imports no torch: `model_types` holds lazy "module:attr" entries.
"""

from __future__ import annotations

import json
from pathlib import Path

from greenloop.registry import Registry

model_types: Registry = Registry("model", entry_point_group="greenloop.models")
model_types.register_lazy("gpt", "greenloop.models.tiny_gpt:TinyGPTForCausalLM")
model_types.register_lazy("trm", "greenloop.models.trm:TRMForRepair")
model_types.register_lazy("hrm", "greenloop.models.hrm:HRMForCausalLM")

# config.json's `model_type` -> registry name
_NAME_OF_MODEL_TYPE = {"greenloop_gpt": "gpt", "greenloop_trm": "trm", "greenloop_hrm": "hrm"}


def build_model(name: str, **config_overrides):
    """A freshly initialised model: `build_model("trm", hidden_size=64, n_layers=1)`.
    Unknown names raise with suggestions; bad config values raise ValueError naming the field."""
    model_class = model_types.get(name)
    return model_class(model_class.config_class(**config_overrides))


def load_model(folder: str | Path, **from_pretrained_kwargs):
    """The model saved in `folder` (by save_pretrained), its class picked from config.json's
    `model_type`."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: no config.json; is {folder} a saved model folder?")
    model_type = json.loads(config_file.read_text()).get("model_type")
    name = _NAME_OF_MODEL_TYPE.get(model_type, model_type)
    if not isinstance(name, str):
        raise ValueError(f"{config_file}: no model_type")
    return model_types.get(name).from_pretrained(str(folder), **from_pretrained_kwargs)


__all__ = ["build_model", "load_model", "model_types"]
