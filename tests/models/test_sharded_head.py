"""medtune's fused output layer under engines that shard parameters: the sharded head is detected
(FSDP2 DTensor, DeepSpeed ZeRO-3 parameter, emptied weight) and scoring falls back to the model's own
forward with the same loss, gradients and sequence log-probs as the fused path on the whole model
(FSDP2 for real: 2 processes over gloo under ``accelerate launch``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from launching import launch_command, run_child

from medtune.models.fused_head import sharded_head_reason

WORKER = Path(__file__).with_name("sharded_head_worker.py")


@pytest.fixture
def tiny_model(tiny_gemma_dir):
    from transformers import Gemma3ForCausalLM

    return Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)


def test_a_whole_head_is_not_sharded(tiny_model):
    assert sharded_head_reason(tiny_model) is None


def test_a_zero3_partitioned_head_is_detected(tiny_model):
    """What DeepSpeed ZeRO-3 leaves outside the forward: an empty tensor, the real size in ``ds_numel``."""
    weight = tiny_model.get_output_embeddings().weight
    numel = weight.numel()
    weight.data = torch.empty(0)
    weight.ds_numel = numel
    reason = sharded_head_reason(tiny_model)
    assert reason is not None and "ZeRO-3" in reason and f"{numel} elements, 0 held here" in reason


def test_an_emptied_head_is_detected(tiny_model):
    head = tiny_model.get_output_embeddings()
    head.weight = torch.nn.Parameter(torch.empty(0))  # an FSDP1 flat-parameter view outside the forward
    reason = sharded_head_reason(tiny_model)
    assert reason is not None and f"instead of ({head.out_features}, {head.in_features})" in reason


def test_fsdp2_sharded_head_falls_back_to_the_models_forward_with_the_same_numbers(
    tmp_path, tiny_gemma_dir, demo_pairs
):
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"en": p.src, "es": p.tgt} for p in demo_pairs[:5]]))
    done = run_child([*launch_command(), str(WORKER), str(tiny_gemma_dir), str(pairs), str(tmp_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["size"] == 2
        assert "FSDP2 DTensor" in record["reason"] and "local shard" in record["reason"]
        assert record["whole_fused"] and not record["sharded_fused"]  # the fused path, then the fallback
        assert record["sharded_n"] == record["whole_n"]
        assert record["sharded_loss"] == pytest.approx(record["whole_loss"], rel=1e-5)
        assert record["whole_loss"] > 1.0  # a random model: not a comparison of two zeros
        assert record["sharded_logps"] == pytest.approx(record["whole_logps"], rel=1e-5)
        assert record["max_grad_diff"] <= 1e-5 * record["max_grad"] + 1e-7
