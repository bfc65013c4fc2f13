"""Loading models (folders, training outputs, names), LoRA attachment and merged export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from medtune.errors import MedtuneError
from medtune.models.adapters import attach_lora, export_merged
from medtune.models.loading import MODEL_INFO_FILE, load_model, resolve_model
from medtune.train.batching import encode_translation_pairs
from medtune.train.loop import LoopConfig, train_loop

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SENTENCES = ["English: Keep the wound clean.\nSpanish:", "English: Take one tablet daily with water.\nSpanish:"]


def _logits(model, tokenizer) -> torch.Tensor:
    tokenizer.padding_side = "right"
    enc = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model.eval()(**enc).logits


def test_load_model_reads_a_plain_folder(tiny_gemma_dir, tiny_tokenizer):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    assert loaded.model.config.model_type == "gemma3_text"
    assert not loaded.is_seq2seq
    assert loaded.ref.adapter_path is None and loaded.ref.base_name == str(tiny_gemma_dir)
    assert loaded.tokenizer("Hello")["input_ids"] == tiny_tokenizer("Hello")["input_ids"]
    assert loaded.tokenizer.pad_token == "<pad>"
    assert next(loaded.model.parameters()).dtype == torch.float32
    # the weights are the ones saved, not a fresh initialisation
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir)
    torch.testing.assert_close(_logits(loaded.model, loaded.tokenizer), _logits(reference, loaded.tokenizer))


def test_load_model_bfloat16(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="bfloat16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_unknown_model_name_lists_the_known_models(medtune_home):
    with pytest.raises(MedtuneError, match="gemma-3-270m") as info:
        load_model("gemma-4-nonexistent")
    assert "Unknown model 'gemma-4-nonexistent'" in str(info.value)
    assert not medtune_home.exists()  # nothing was downloaded or built


def test_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(MedtuneError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_attach_lora_trains_only_adapter_parameters(tiny_gemma_dir, tiny_tokenizer, demo_pairs, tmp_path):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    model = attach_lora(loaded.model, 4, 8, 0.0, LORA_TARGETS + ["not_a_module"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    # every targeted projection of both layers got an adapter pair
    assert len(trainable) == 2 * 2 * len(LORA_TARGETS)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    examples = encode_translation_pairs(tiny_tokenizer, demo_pairs[:8], seq2seq=False, max_length=128)
    cfg = LoopConfig(batch_size=4, grad_accum=1, lr=1e-2, seed=0, max_steps=2, warmup_ratio=0.0)
    train_loop(model, examples, [], cfg, tiny_tokenizer.pad_token_id, False, tmp_path / "ckpt", log=lambda _: None)

    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)


def test_attach_lora_with_no_matching_module_names_the_linears(tiny_gemma_dir):
    model = load_model(str(tiny_gemma_dir), dtype="float32").model
    with pytest.raises(MedtuneError, match="q_proj"):
        attach_lora(model, 4, 8, 0.0, ["fc_nope"])


def test_train_recipe_writes_a_loadable_adapter_folder(trained_output, tiny_gemma_dir):
    assert trained_output == Path(trained_output.parent / "model")
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "recipe.yaml", "metrics.json"):
        assert (trained_output / name).is_file(), name
    info = json.loads((trained_output / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    assert info["base_model"] == str(tiny_gemma_dir) and info["adapter"] is True and info["seq2seq"] is False
    metrics = json.loads((trained_output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 4 and len(metrics["loss_history"]) == 4
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["dev_loss"] is not None and metrics["train_examples"] > 400

    loaded = load_model(str(trained_output), dtype="float32")
    assert loaded.ref.adapter_path == trained_output
    assert loaded.ref.base_path == str(tiny_gemma_dir)
    assert not hasattr(loaded.model, "peft_config")  # merged for inference
    head = loaded.model.get_output_embeddings().weight
    # inference unless asked; only the head keeps the flag from_pretrained gives every weight (_keep_head_foldable)
    assert not any(p.requires_grad for p in loaded.model.parameters() if p is not head) and head.requires_grad
    unmerged = load_model(str(trained_output), dtype="float32", trainable_adapter=True).model
    assert hasattr(unmerged, "peft_config") and any(p.requires_grad for p in unmerged.parameters())


def test_inference_merges_the_adapter_with_the_unmerged_models_logits(trained_output):
    import torch

    merged = load_model(str(trained_output), dtype="float32").model
    unmerged = load_model(str(trained_output), dtype="float32", trainable_adapter=True).model.eval()
    ids = torch.tensor([[2, 17, 33, 5, 90, 41]])
    with torch.no_grad():
        want, got = unmerged(input_ids=ids).logits, merged(input_ids=ids).logits
    assert not hasattr(merged, "peft_config")
    assert (want - got).abs().max() < 1e-4 * want.abs().max()
    bf16 = load_model(str(trained_output), dtype="bfloat16").model  # merged in the serving dtype
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())


def test_export_merged_matches_the_adapter_model(trained_output, tiny_gemma_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = load_model(str(trained_output), dtype="float32")
    out = export_merged(trained_output, tmp_path / "merged")

    assert not (out / "adapter_config.json").exists()
    info = json.loads((out / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    assert info["merged"] is True and info["adapter"] is False
    merged = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir)

    adapted_logits = _logits(adapter.model, tokenizer)
    torch.testing.assert_close(_logits(merged, tokenizer), adapted_logits, rtol=1e-4, atol=1e-4)
    assert (_logits(base, tokenizer) - adapted_logits).abs().max() > 1e-2  # the adapter mattered


def test_export_refuses_a_non_empty_folder_and_a_plain_model(trained_output, tiny_gemma_dir, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x", encoding="utf-8")
    with pytest.raises(MedtuneError, match="not empty"):
        export_merged(trained_output, busy)
    with pytest.raises(MedtuneError, match="not a medtune training output"):
        export_merged(tiny_gemma_dir, tmp_path / "out")


@pytest.mark.parametrize("recorded", ["absolute", "runs/base/model", "./base"])
def test_an_adapter_whose_base_folder_is_gone_names_the_missing_base(
    trained_output, tiny_gemma_dir, tmp_path, monkeypatch, recorded
):
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "moved-base"
    shutil.copytree(tiny_gemma_dir, base)
    adapter = tmp_path / "adapter"
    shutil.copytree(trained_output, adapter)
    base_name = str(base) if recorded == "absolute" else recorded
    info = json.loads((adapter / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    (adapter / MODEL_INFO_FILE).write_text(json.dumps({**info, "base_model": base_name}), encoding="utf-8")
    if recorded == "absolute":
        assert load_model(str(adapter)).ref.base_path == str(base)  # loads while the base is there
    shutil.rmtree(base)
    with pytest.raises(MedtuneError) as info_error:
        resolve_model(str(adapter))
    message = str(info_error.value)
    assert f"{adapter} is a LoRA adapter on the base model {base_name!r}" in message
    assert f"{adapter / MODEL_INFO_FILE}" in message and "that base is not found" in message
    assert "Unknown model" not in message and "Put the base model back" in message


def test_a_relative_base_folder_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    from medtune.train.setup import _portable_base_name

    (tmp_path / "bases" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _portable_base_name("bases/mine") == str(tmp_path.resolve() / "bases" / "mine")
    assert _portable_base_name("gemma-3-270m") == "gemma-3-270m"  # a known name or hub id stays as written
    assert _portable_base_name("owner/model") == "owner/model"


def test_export_never_deletes_a_users_folder_named_like_its_scratch_folder(trained_output, tmp_path):
    from cli_checks import file_checksums

    from medtune.errors import MedtuneError
    from medtune.models.adapters import PARTIAL_MARKER

    users = tmp_path / "merged.partial"
    users.mkdir()
    (users / "notes.txt").write_text("mine", encoding="utf-8")
    before = file_checksums(users)
    with pytest.raises(MedtuneError, match="was not written by medtune"):
        export_merged(trained_output, tmp_path / "merged")
    assert file_checksums(users) == before and not (tmp_path / "merged").exists()

    (users / "notes.txt").unlink()
    (users / PARTIAL_MARKER).touch()  # an interrupted export's leftover is replaced
    out = export_merged(trained_output, tmp_path / "merged")
    assert (out / "config.json").is_file() and not (out / PARTIAL_MARKER).exists() and not users.exists()
