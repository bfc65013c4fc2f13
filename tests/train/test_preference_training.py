"""Preference training: the reference model without a second copy (LoRA: merged SFT + fresh adapter;
full: cached reference log-probs), the first DPO step at ln 2, KTO at 0.5, Marian DPO, and encoding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from demo_rows import demo_records

from medtune.data.preference import PreferencePair
from medtune.data.prompts import translation_prompt, translation_target
from medtune.recipes.schema import Recipe

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MARIAN_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _pairs(n: int = 6) -> list[PreferencePair]:
    records = demo_records(2 * n)
    return [
        PreferencePair(f"p{i}", records[i]["en"], records[i]["es"], records[i + n]["es"], origin=f"pairs.jsonl:{i + 1}")
        for i in range(n)
    ]


def _recipe(model: Path | str, objective: str = "dpo", method: str = "lora", **train) -> Recipe:
    settings = dict(
        objective=objective,
        method=method,
        max_steps=1,
        batch_size=4,
        lr=1e-3,
        warmup_ratio=0.0,
        dtype="float32",
        gradient_checkpointing=False,
        eval_every=1,
        save_every=100,
        lora={"r": 4, "alpha": 8, "target_modules": LORA_TARGETS},
    )
    settings.update(train)
    return Recipe(name="pref", task="translation", model=str(model), device="cpu", data={"train": "x"}, train=settings)


def _quiet(_message: str) -> None:
    pass


def _answer_logps(model, tokenizer, pairs: list[PreferencePair]) -> torch.Tensor:
    """Summed log-probs [pairs, 2] of each pair's answers after the translation prompt (plain forward)."""
    out = []
    for pair in pairs:
        row = []
        prompt = tokenizer(translation_prompt(pair.prompt), add_special_tokens=True)["input_ids"]
        for answer in (pair.chosen, pair.rejected):
            target = tokenizer(translation_target(answer), add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([prompt + target])).logits[0].double()
            log_probs = torch.log_softmax(logits, dim=-1)
            row.append(sum(float(log_probs[len(prompt) + j - 1, t]) for j, t in enumerate(target)))
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


@pytest.fixture(scope="module")
def sft_adapter_dir(tmp_path_factory, tiny_gemma_dir) -> Path:
    """A medtune LoRA output on the tiny Gemma whose adapter holds non-zero 'SFT' weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.models.adapters import attach_lora

    model = attach_lora(AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir)), 4, 8, 0.0, LORA_TARGETS)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("sft")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(tiny_gemma_dir)).save_pretrained(folder)
    info = {"base_model": str(tiny_gemma_dir), "task": "translation", "method": "lora", "adapter": True}
    (folder / "medtune_model.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def test_lora_dpo_from_an_sft_adapter(tmp_path, sft_adapter_dir, tiny_gemma_dir):
    """The adapter folder is merged once; the fresh adapter disabled is exactly the SFT model; step 1 = ln 2."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.models.loading import load_model
    from medtune.train.preference import MERGED_FOLDER, train_preference

    pairs = _pairs()
    out = tmp_path / "run" / "dpo"
    trained = train_preference(_recipe(sft_adapter_dir), pairs, pairs[:2], str(sft_adapter_dir), str(out), log=_quiet)
    assert trained.result.loss_history[0][1] == pytest.approx(math.log(2), abs=1e-6)
    history = dict(trained.result.metric_history)
    assert history[1]["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # policy = reference at step 1

    merged = tmp_path / "run" / MERGED_FOLDER
    info = json.loads((out / "medtune_model.json").read_text())
    assert info["objective"] == "dpo" and info["beta"] == 0.1
    assert info["reference_model"] == str(merged.resolve()) and info["base_model"] == str(merged.resolve())
    assert info["start_model"] == str(sft_adapter_dir.resolve()) and info["reference"] == "adapter disabled"

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    sft = load_model(str(sft_adapter_dir), dtype="float32", device="cpu").model.eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir)).eval()
    dpo = load_model(str(out), dtype="float32", device="cpu", trainable_adapter=True).model.eval()
    with dpo.disable_adapter():
        disabled = _answer_logps(dpo, tokenizer, pairs)
    expected = _answer_logps(sft, tokenizer, pairs)
    assert torch.allclose(disabled, expected, atol=1e-4, rtol=0)
    assert not torch.allclose(disabled, _answer_logps(base, tokenizer, pairs), atol=1e-1)  # not the base model
    assert not torch.allclose(_answer_logps(dpo, tokenizer, pairs), disabled, atol=1e-6)  # the step moved it

    # a second run re-uses the merged model (not re-written)
    stamp = (merged / "model.safetensors").stat().st_mtime_ns
    messages: list[str] = []
    train_preference(
        _recipe(sft_adapter_dir), pairs, [], str(sft_adapter_dir), str(tmp_path / "run" / "dpo2"), log=messages.append
    )
    assert (merged / "model.safetensors").stat().st_mtime_ns == stamp
    assert any("merged earlier" in m for m in messages)


def test_chained_preference_training_never_replaces_its_own_base(tmp_path, sft_adapter_dir):
    """DPO again from a DPO output (an adapter on <run>/sft_merged) into the same run: refused, base kept."""
    from medtune.errors import MedtuneError
    from medtune.train.preference import MERGED_FOLDER, train_preference

    first = tmp_path / "dpo"
    train_preference(_recipe(sft_adapter_dir), _pairs(), [], str(sft_adapter_dir), str(first), log=_quiet)
    stamp = (tmp_path / MERGED_FOLDER / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(MedtuneError, match="cannot hold a new merge"):
        train_preference(_recipe(first), _pairs(), [], str(first), str(tmp_path / "dpo2"), log=_quiet)
    assert (tmp_path / MERGED_FOLDER / "model.safetensors").stat().st_mtime_ns == stamp


def test_merge_folder_not_written_by_medtune_is_refused(tmp_path, sft_adapter_dir):
    from medtune.errors import MedtuneError
    from medtune.train.preference import MERGED_FOLDER, train_preference

    (tmp_path / MERGED_FOLDER).mkdir()
    (tmp_path / MERGED_FOLDER / "notes.txt").write_text("mine")
    with pytest.raises(MedtuneError, match="not written by medtune"):
        train_preference(
            _recipe(sft_adapter_dir), _pairs(), [], str(sft_adapter_dir), str(tmp_path / "dpo"), log=_quiet
        )
    assert (tmp_path / MERGED_FOLDER / "notes.txt").read_text() == "mine"


def test_a_merge_interrupted_before_its_marker_is_merged_again(tmp_path, sft_adapter_dir):
    from medtune.train.preference import MERGED_FOLDER, MERGED_SOURCE_FILE, merged_sft_model

    merged = tmp_path / MERGED_FOLDER
    merged_sft_model(sft_adapter_dir, merged, log=_quiet)
    expected = (merged / "model.safetensors").read_bytes()
    (merged / MERGED_SOURCE_FILE).unlink()  # killed after export_merged, before the marker
    (merged / "model.safetensors").write_bytes(b"half-written")
    messages: list[str] = []
    merged_sft_model(sft_adapter_dir, merged, log=messages.append)
    assert any("interrupted merge" in m for m in messages)
    assert (merged / "model.safetensors").read_bytes() == expected and (merged / MERGED_SOURCE_FILE).is_file()


def test_full_fine_tuning_caches_reference_log_probs(tmp_path, tiny_gemma_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.train.preference import REFERENCE_CACHE, train_preference

    pairs = _pairs()
    recipe = _recipe(tiny_gemma_dir, method="full")
    trained = train_preference(recipe, pairs, pairs[:2], str(tiny_gemma_dir), str(tmp_path / "a"), log=_quiet)
    assert trained.result.loss_history[0][1] == pytest.approx(math.log(2), abs=1e-6)
    cache = tmp_path / REFERENCE_CACHE
    saved = torch.load(cache, weights_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir)).eval()
    oracle = _answer_logps(model, AutoTokenizer.from_pretrained(str(tiny_gemma_dir)), pairs)
    assert torch.allclose(saved["logps"]["train"], oracle, atol=1e-3, rtol=1e-6)
    assert torch.allclose(saved["logps"]["dev"], oracle[:2], atol=1e-3, rtol=1e-6)
    info = json.loads((tmp_path / "a" / "medtune_model.json").read_text())
    assert info["reference"] == "precomputed log-probabilities" and info["reference_model"] == str(tiny_gemma_dir)

    stamp, content = cache.stat().st_mtime_ns, cache.read_bytes()
    messages: list[str] = []
    again = train_preference(recipe, pairs, pairs[:2], str(tiny_gemma_dir), str(tmp_path / "b"), log=messages.append)
    assert cache.stat().st_mtime_ns == stamp and cache.read_bytes() == content  # re-used, not rewritten
    assert any("re-using" in m for m in messages)
    assert again.result.loss_history == trained.result.loss_history

    # other pairs: another key, computed again
    train_preference(recipe, pairs[:4], [], str(tiny_gemma_dir), str(tmp_path / "c"), log=_quiet)
    assert torch.load(cache, weights_only=True)["key"] != saved["key"]


def test_kto_first_step_is_one_half(tmp_path, tiny_gemma_dir):
    from medtune.train.preference import train_preference

    trained = train_preference(
        _recipe(tiny_gemma_dir, objective="kto"), _pairs(), [], str(tiny_gemma_dir), str(tmp_path / "kto"), log=_quiet
    )
    # policy = reference: every log-ratio and z are 0, so each example loses 1 - sigmoid(0) = 0.5
    assert trained.result.loss_history[0][1] == pytest.approx(0.5, abs=1e-6)


def test_kto_with_full_fine_tuning_is_refused(tmp_path, tiny_gemma_dir):
    from medtune.errors import MedtuneError
    from medtune.train.preference import train_preference

    with pytest.raises(MedtuneError, match="train.method=lora"):
        recipe = _recipe(tiny_gemma_dir, objective="kto", method="full")
        train_preference(recipe, _pairs(), [], str(tiny_gemma_dir), str(tmp_path / "kto"), log=_quiet)


def test_marian_dpo_step_raises_the_chosen_margin(tmp_path, tiny_marian_dir):
    from transformers import AutoTokenizer, MarianMTModel

    from medtune.models.loading import load_model
    from medtune.train.preference import train_preference

    pairs = _pairs(4)
    recipe = _recipe(tiny_marian_dir, lr=5e-2, lora={"r": 4, "alpha": 8, "target_modules": MARIAN_TARGETS})
    train_preference(recipe, pairs, [], str(tiny_marian_dir), str(tmp_path / "dpo"), log=_quiet)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_marian_dir))

    def margins(model) -> torch.Tensor:
        values = []
        for pair in pairs:
            row = []
            for answer in (pair.chosen, pair.rejected):
                enc = tokenizer(pair.prompt, text_target=answer, return_tensors="pt")
                with torch.no_grad():
                    out = model(input_ids=enc["input_ids"], labels=enc["labels"])
                row.append(-float(out.loss) * enc["labels"].shape[1])
            values.append(row[0] - row[1])
        return torch.tensor(values)

    before = margins(MarianMTModel.from_pretrained(str(tiny_marian_dir)).eval())
    after = margins(load_model(str(tmp_path / "dpo"), dtype="float32", device="cpu").model.eval())
    assert after.sum() > before.sum()


def test_chat_pairs_label_only_the_final_answer(tiny_chatml_dir):
    from transformers import AutoTokenizer

    from medtune.data.examples import IGNORE
    from medtune.train.preference_data import PairEncoding, encode_preference_pairs

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_chatml_dir))
    prompt = [
        {"role": "user", "content": "Fever?"},
        {"role": "assistant", "content": "How high?"},
        {"role": "user", "content": "39 degrees."},
    ]
    pair = PreferencePair("c1", prompt, "See a doctor today.", "Ignore it.")
    how = PairEncoding("chat", seq2seq=False, max_length=512, system_prompt="Be careful.")
    (encoded,), kept, report = encode_preference_pairs(tokenizer, [pair], how)
    assert kept == [0] and report.encoded == 1 and report.truncated == 0
    for example, answer in ((encoded.chosen, pair.chosen), (encoded.rejected, pair.rejected)):
        labelled = [t for t in example.labels if t != IGNORE]
        assert tokenizer.decode(labelled) == f"{answer}<|im_end|>\n"
        text = tokenizer.decode(example.input_ids)
        assert text.startswith("<|im_start|>system\nBe careful.<|im_end|>") and "How high?" in text

    short = PairEncoding("chat", seq2seq=False, max_length=40)
    encoded, kept, report = encode_preference_pairs(tokenizer, [pair], short, required=False)
    assert encoded == [] and len(report.skipped) == 1 and "train.max_length=40" in report.skipped[0]


def test_translation_pairs_encode_like_sft(tiny_gemma_dir):
    from transformers import AutoTokenizer

    from medtune.train.batching import encode_causal
    from medtune.train.preference_data import PairEncoding, encode_preference_pairs

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    pair = _pairs(1)[0]
    (encoded,), _, report = encode_preference_pairs(tokenizer, [pair], PairEncoding("translation", False, 512))
    assert encoded.chosen == encode_causal(
        tokenizer, translation_prompt(pair.prompt), translation_target(pair.chosen), 512
    )
    cut_to = len(tokenizer(translation_prompt(pair.prompt))["input_ids"]) + 2
    (encoded,), _, report = encode_preference_pairs(tokenizer, [pair], PairEncoding("translation", False, cut_to))
    assert report.truncated == 1 and encoded.chosen.length == cut_to
