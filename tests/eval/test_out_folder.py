"""The eval --out guard: a folder is written only when new, empty, or holding the same evaluation."""

from __future__ import annotations

import json
import os

import pytest
from cli_checks import file_checksums

from medtune.errors import MedtuneError
from medtune.eval.out_folder import IDENTITY_FILE, EvaluationIdentity, check_eval_out, record_evaluation


@pytest.fixture
def identity(tmp_path) -> EvaluationIdentity:
    data = tmp_path / "test.jsonl"
    data.write_text('{"en": "a", "es": "b"}\n', encoding="utf-8")
    return EvaluationIdentity.of("translation", str(data), model="gemma-3-270m")


def test_a_new_or_empty_folder_is_accepted(tmp_path, identity):
    check_eval_out(tmp_path / "new", identity, overwrite=False)
    (tmp_path / "empty").mkdir()
    check_eval_out(tmp_path / "empty", identity, overwrite=False)


def test_a_model_folder_is_refused_and_left_unchanged(tmp_path, identity):
    model = tmp_path / "model"
    model.mkdir()
    (model / "metrics.json").write_text('{"train_loss": 1.23}', encoding="utf-8")
    (model / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    before = file_checksums(model)
    for overwrite in (False, True):
        with pytest.raises(
            MedtuneError, match=r"--out .*model is not empty \(adapter_model\.safetensors, metrics\.json\)"
        ):
            check_eval_out(model, identity, overwrite)
    assert file_checksums(model) == before


def test_the_same_evaluation_needs_overwrite(tmp_path, identity):
    out = tmp_path / "eval"
    record_evaluation(out, identity)
    (out / "metrics.json").write_text("{}", encoding="utf-8")
    with pytest.raises(MedtuneError, match="already holds this evaluation.*Pass --overwrite"):
        check_eval_out(out, identity, overwrite=False)
    check_eval_out(out, identity, overwrite=True)
    # the same files named differently (relative vs absolute path) are the same evaluation
    relative = EvaluationIdentity.of("translation", os.path.relpath(identity.data), model="gemma-3-270m")
    assert relative == identity


@pytest.mark.parametrize(
    "other",
    [
        {"task": "mcq"},
        {"model": "Helsinki-NLP/opus-mt-en-es"},
        {"data": "demo:medical_en_es.jsonl"},
        {"model": None, "outputs": "/somewhere/outputs.jsonl"},
    ],
)
def test_another_evaluation_is_refused_even_with_overwrite(tmp_path, identity, other):
    out = tmp_path / "eval"
    earlier = EvaluationIdentity(**{**json.loads(json.dumps(identity.__dict__)), **other})
    record_evaluation(out, earlier)
    (out / "metrics.json").write_text('{"chrf": 50.0}', encoding="utf-8")
    before = file_checksums(out)
    with pytest.raises(MedtuneError, match=r"holds another evaluation .*--overwrite only replaces the same evaluation"):
        check_eval_out(out, identity, overwrite=True)
    assert file_checksums(out) == before


def test_a_file_as_out_and_an_unreadable_record_are_refused(tmp_path, identity):
    a_file = tmp_path / "results.json"
    a_file.write_text("{}", encoding="utf-8")
    with pytest.raises(MedtuneError, match="is a file"):
        check_eval_out(a_file, identity, overwrite=True)
    out = tmp_path / "eval"
    out.mkdir()
    (out / IDENTITY_FILE).write_text("not json", encoding="utf-8")
    (out / "metrics.json").write_text("{}", encoding="utf-8")
    with pytest.raises(MedtuneError, match="holds no earlier medtune evaluation"):
        check_eval_out(out, identity, overwrite=True)
