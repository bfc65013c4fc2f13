"""Mixed-precision training: what is bf16 and what stays float32, refusals, and what metrics record.

The CPU flags are faked (monkeypatch) so that ``auto`` means the same on every machine; the bf16
arithmetic itself runs for real on the CPU.
"""

from __future__ import annotations

import json

import pytest
import torch

from medtune.errors import MedtuneError
from medtune.models import device as dev
from medtune.models.fused_head import decoder_hidden_states
from medtune.pipeline import train_recipe
from medtune.recipes.loader import validate_recipe
from medtune.train.batching import collate, encode_translation_pairs
from medtune.train.loop import LoopConfig, train_loop
from medtune.train.loss import target_loss
from medtune.train.setup import loop_config, prepare_trainable_model, training_precision

AMX_CPUINFO = "model name\t: Test CPU\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16\n"
OLD_CPUINFO = "model name\t: Old CPU\nflags\t\t: fpu avx2\n"


def _quiet(_message: str) -> None:
    pass


@pytest.fixture
def amx_cpu(monkeypatch):
    monkeypatch.setattr(dev, "_cpu_info", lambda: AMX_CPUINFO)


def _recipe(model_dir, tmp_path, **train) -> object:
    return validate_recipe(
        {
            "name": "precision",
            "task": "translation",
            "model": str(model_dir),
            "device": "cpu",
            "run_dir": str(tmp_path / "run"),
            "data": {"train": "demo:medical_en_es.jsonl", "test_size": 0.1, "dev_size": 0.02},
            "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-2, "max_length": 96, "lora": {"r": 4, "alpha": 8}}
            | train,
            "eval": {"few_shot": 0},
        }
    )


def _batch(trainable, demo_pairs):
    examples = encode_translation_pairs(trainable.loaded.tokenizer, demo_pairs[:8], seq2seq=False, max_length=96)
    return examples, collate(examples, trainable.loaded.tokenizer.pad_token_id, seq2seq=False)


def test_auto_on_a_bf16_cpu_trains_lora_over_a_bf16_base(tiny_gemma_dir, tmp_path, amx_cpu, demo_pairs):
    trainable = prepare_trainable_model(_recipe(tiny_gemma_dir, tmp_path, dtype="auto"), log=_quiet)
    assert trainable.compute_dtype == torch.bfloat16 and trainable.autocast_dtype is None
    frozen = {p.dtype for p in trainable.model.parameters() if not p.requires_grad}
    lora = {n: p.dtype for n, p in trainable.model.named_parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16}
    assert lora and set(lora.values()) == {torch.float32} and all("lora_" in n for n in lora)

    examples, batch = _batch(trainable, demo_pairs)
    assert decoder_hidden_states(trainable.model, batch).dtype == torch.bfloat16  # bf16 activations
    loss, _ = target_loss(trainable.model, batch, seq2seq=False)
    assert loss.dtype == torch.float32  # the loss is accumulated in float32

    # the loop's optimizer state (saved in its checkpoint) is float32, like the parameters it updates
    config = LoopConfig(batch_size=4, grad_accum=1, lr=1e-2, seed=0, max_steps=2, eval_every=10, save_every=1)
    pad = trainable.loaded.tokenizer.pad_token_id
    train_loop(trainable.model, examples, [], config, pad, False, tmp_path / "ckpt", log=_quiet)
    state = torch.load(tmp_path / "ckpt" / "last" / "state.pt", weights_only=False)
    moments = [v for s in state["optimizer"]["state"].values() for k, v in s.items() if k.startswith("exp_avg")]
    assert moments and {m.dtype for m in moments} == {torch.float32}
    assert {v.dtype for v in state["params"].values()} == {torch.float32}


def test_bf16_lora_loss_matches_float32_to_bf16_precision(tiny_gemma_dir, tmp_path, amx_cpu, demo_pairs):
    losses = {}
    for dtype in ("bfloat16", "float32"):
        torch.manual_seed(0)
        trainable = prepare_trainable_model(_recipe(tiny_gemma_dir, tmp_path, dtype=dtype), log=_quiet)
        _, batch = _batch(trainable, demo_pairs)
        with torch.no_grad():
            loss, n = target_loss(trainable.model, batch, seq2seq=False)
        losses[dtype] = float(loss) / n
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=2e-2)
    assert losses["bfloat16"] != losses["float32"]  # really computed in a different precision


def test_full_fine_tuning_in_bf16_keeps_float32_master_weights(tiny_gemma_dir, tmp_path, amx_cpu, demo_pairs):
    recipe = _recipe(tiny_gemma_dir, tmp_path, dtype="bfloat16", method="full")
    trainable = prepare_trainable_model(recipe, log=_quiet)
    assert trainable.compute_dtype == torch.bfloat16 and trainable.autocast_dtype == torch.bfloat16
    assert {p.dtype for p in trainable.model.parameters()} == {torch.float32}
    before = {n: p.detach().clone() for n, p in trainable.model.named_parameters()}
    examples, batch = _batch(trainable, demo_pairs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert trainable.model(input_ids=batch["input_ids"]).logits.dtype == torch.bfloat16  # bf16 compute
    config = loop_config(recipe, trainable.autocast_dtype)
    assert config.autocast_dtype == torch.bfloat16
    result = train_loop(trainable.model, examples, [], config, 0, False, tmp_path / "ckpt", log=_quiet)
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.train_loss))
    after = dict(trainable.model.named_parameters())
    assert {p.dtype for p in after.values()} == {torch.float32}
    # small updates survive in float32 (in bf16 many would round away): every weight matrix moved
    assert all(not torch.equal(after[n], before[n]) for n in before if n.endswith("q_proj.weight"))


def test_bfloat16_on_a_cpu_without_it_is_refused(tiny_gemma_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "_cpu_info", lambda: OLD_CPUINFO)
    with pytest.raises(MedtuneError, match=r"train.dtype=bfloat16 asked for, but this CPU \(Old CPU\)"):
        training_precision(_recipe(tiny_gemma_dir, tmp_path, dtype="bfloat16"))
    notes: list[str] = []
    device, compute, autocast = training_precision(_recipe(tiny_gemma_dir, tmp_path), log=notes.append)
    assert (device, compute, autocast) == (torch.device("cpu"), torch.float32, None)
    assert notes == [
        "train.dtype=auto: Old CPU has no native bfloat16 (none of the CPU flags amx_bf16, avx512_bf16); using float32."
    ]


def test_float16_training_is_refused_by_the_recipe(tiny_gemma_dir, tmp_path):
    with pytest.raises(MedtuneError, match="key 'train.dtype': .*training in float16 would need loss scaling"):
        _recipe(tiny_gemma_dir, tmp_path, dtype="float16")


def test_a_missing_gpu_in_the_recipe_is_refused(tiny_gemma_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = _recipe(tiny_gemma_dir, tmp_path).model_copy(update={"device": "cuda:1"})
    with pytest.raises(MedtuneError, match=r"device='cuda:1' asks for a CUDA GPU.*Available: cpu"):
        training_precision(recipe)


def test_training_metrics_record_device_and_precision(tiny_gemma_dir, tmp_path, amx_cpu):
    out = train_recipe(_recipe(tiny_gemma_dir, tmp_path, dtype="auto"), log=_quiet)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["device"] == "cpu" and metrics["device_name"] == "Test CPU" and metrics["dtype"] == "bfloat16"
    assert metrics["mixed_precision"] == "bfloat16 frozen base, float32 LoRA weights, optimizer state and loss"
