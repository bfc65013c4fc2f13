"""The real embedded Gemma 3 270M: cache folder, loading, two LoRA steps and a few-shot translation.

Slow (the first run converts the GGUF, about 100 s). It uses ``$MEDTUNE_HOME`` as set by the
environment (``~/.cache/medtune`` by default) so CI builds the cache once and reuses it.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from medtune.data.prompts import translation_prompt
from medtune.generate.engine import generate_texts
from medtune.models.adapters import attach_lora
from medtune.models.gguf import EMBEDDED_NAME, ensure_embedded_model
from medtune.models.loading import load_model
from medtune.train.batching import encode_translation_pairs
from medtune.train.loop import LoopConfig, train_loop

pytestmark = pytest.mark.slow

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture
def all_threads():
    """The suite runs tiny models on one thread; a 270M model wants every core."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def test_embedded_model_trains_and_translates(all_threads, demo_pairs, tmp_path):
    folder = ensure_embedded_model(log=lambda _: None)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    has_template = (folder / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (folder / "tokenizer_config.json").read_text(encoding="utf-8")
    )
    assert has_template
    assert json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"] == "gemma3_text"

    loaded = load_model(EMBEDDED_NAME)
    tok = loaded.tokenizer
    assert loaded.ref.base_path == str(folder) and not loaded.is_seq2seq
    assert tok.chat_template and "<start_of_turn>" in tok.chat_template
    assert tok("Hello")["input_ids"][0] == tok.bos_token_id

    torch.manual_seed(0)
    model = attach_lora(loaded.model, 8, 16, 0.0, LORA_TARGETS)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    examples = encode_translation_pairs(tok, demo_pairs[:8], seq2seq=False, max_length=96)
    cfg = LoopConfig(batch_size=4, grad_accum=1, lr=2e-4, seed=0, max_steps=2, warmup_ratio=0.0)
    result = train_loop(model, examples, [], cfg, tok.pad_token_id, False, tmp_path / "ckpt", log=lambda _: None)

    assert result.steps == 2 and len(result.loss_history) == 2
    assert all(math.isfinite(loss) and 0 < loss < 20 for _, loss in result.loss_history)
    after = dict(model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)

    prompt = translation_prompt("The patient has a fever.", "en", "es", examples=demo_pairs[:2])
    with model.disable_adapter():
        [translation] = generate_texts(model, tok, [prompt], max_new_tokens=24, progress=None)
    assert isinstance(translation, str) and translation.strip()
    assert "\n" not in translation
