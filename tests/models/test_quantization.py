"""Quantised bases: clear messages when the hardware or the optional backend is missing."""

from __future__ import annotations

import json

import pytest
import torch

from medtune.errors import MedtuneError
from medtune.models import quantization
from medtune.models.loading import load_model
from medtune.models.quantization import check_prequantized, dequantize_for_merge, prequantized_method


def test_qlora_without_cuda_names_the_requirement(tiny_gemma_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MedtuneError, match="needs a CUDA GPU.*train.quantization=none"):
        load_model(str(tiny_gemma_dir), quantization="4bit")


def test_qlora_without_bitsandbytes_names_the_extra(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MedtuneError, match=r"medtune\[qlora\]"):
        quantization.bnb_4bit_config()


def test_gptq_checkpoint_without_backend_names_the_extra(tiny_gemma_dir, tmp_path, monkeypatch):
    folder = tmp_path / "gptq-model"
    folder.mkdir()
    for f in tiny_gemma_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MedtuneError, match=r"GPTQ-quantised.*medtune\[gptq\]"):
        load_model(str(folder))


def test_full_precision_models_pass_the_checks(tiny_gemma_dir):
    model = load_model(str(tiny_gemma_dir)).model
    assert prequantized_method(model.config) is None
    check_prequantized(model.config, "tiny")
    assert dequantize_for_merge(model, log=lambda *_: None) is model  # nothing to dequantise


def test_merge_dequantises_a_quantised_base_and_says_so():
    class FakeQuantised:
        class config:  # noqa: N801 - mimics a transformers config attribute
            quantization_config = {"quant_method": "gptq"}

        def dequantize(self):
            return "full-precision model"

    said = []
    assert dequantize_for_merge(FakeQuantised(), log=said.append) == "full-precision model"
    assert said and "dequantising" in said[0]
