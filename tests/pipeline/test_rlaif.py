"""The rlaif recipes end to end through the CLI on tiny models: every stage, its files and the numbers linking them.

translate-rlaif runs on a tiny Marian model (the reference judge: sentence chrF++ against the
reference); qa-rlaif on a tiny Gemma with a chat template, with free-text answers judged against a
reference answer (similarity + key-point coverage), since a random tiny model names no correct
option letter. Re-runs, ``--from`` and a kill during judging are checked on the translation run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli
from fastapi import FastAPI, Request

from medtune.data.io import read_jsonl
from medtune.rlaif.pairs import build_pairs

STAGES = ["data", "sft", "generate", "judge", "pairs", "dpo", "eval", "report"]
TINY = [
    "sft.max_steps=2",
    "sft.lr=0.05",  # large steps, so that two of them change the tiny models' answers
    "train.max_steps=2",
    "train.lr=0.05",
    "train.batch_size=2",
    "train.eval_every=1",
    "train.max_length=96",
    "generate.n=3",
    "generate.max_new_tokens=12",
    "generate.temperature=1.0",
    "generate.max_prompts=8",
    "pairs.margin=0.01",
    "pairs.heldout=0.25",
    "eval.limit=4",
    "eval.batch_size=8",
    "eval.max_new_tokens=12",
]


def run_rlaif(recipe: str, model: Path, run_dir: Path, home: Path, *sets: str, extra: tuple[str, ...] = ()):
    args = ["run", recipe, *[a for s in (f"model={model}", f"run_dir={run_dir}", *TINY, *sets) for a in ("--set", s)]]
    return run_cli([*args, *extra], home=home)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]


def check_pairs_and_summary(run_dir: Path) -> dict:
    """The pair counts equal build_pairs' own on the written files; summary.json names what the run made."""
    stages = manifest(run_dir)
    assert list(stages) == STAGES
    candidates = read_jsonl(run_dir / "candidates" / "candidates.jsonl")
    scores = {r["id"]: r["score"] for r in read_jsonl(run_dir / "judge" / "judgments.jsonl")}
    pairs, stats = build_pairs(candidates, scores, 0.01)
    record = stages["pairs"]
    assert (record["pairs"], record["ties"], record["all_bad"], record["too_few"]) == (
        stats.pairs,
        stats.ties,
        stats.all_bad,
        stats.too_few,
    )
    assert record["pairs"] == len(pairs) > 0 and record["train"] + record["heldout"] == len(pairs)
    assert len(read_jsonl(run_dir / "pairs" / "train.jsonl")) == record["train"]
    # every distinct candidate was judged once; duplicates reuse nothing and are not judged
    distinct = [c for c in candidates if c["duplicate_of"] is None]
    assert sorted(scores) == sorted(c["id"] for c in distinct)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["pipeline"] == "rlaif"
    assert summary["sft_model"] == stages["sft"]["sft_model"] == str(run_dir / "sft_model")
    assert summary["dpo_model"] == summary["output_dir"] == stages["dpo"]["dpo_model"]
    assert {name: s["fingerprint"] for name, s in summary["stages"].items()} == {
        name: stages[name]["fingerprint"] for name in STAGES[:-1]
    }
    assert summary["pairs"]["pairs"] == len(pairs) and sum(summary["pairs"]["histogram"]["counts"]) == len(distinct)
    assert summary["dpo_training"]["steps"] == 2 and summary["dpo_training"]["metric_history"]
    w = summary["win_rate"]
    assert w["wins"] + w["ties"] + w["losses"] == w["n"] == 4 and w["ci_low"] <= w["win_rate"] <= w["ci_high"]
    assert (Path(summary["dpo_model"]) / "medtune_model.json").is_file()
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Win-rate: DPO vs SFT" in html and html.count("<img") >= 3
    return summary


@pytest.fixture(scope="module")
def translation_run(tiny_marian_dir, tmp_path_factory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("translate-rlaif")
    run_dir, home = tmp / "run", tmp / "home"
    result = run_rlaif("translate-rlaif", tiny_marian_dir, run_dir, home, "data.sample=80")
    assert result.exit_code == 0, result.output
    return run_dir, home, result


def test_translate_rlaif_on_marian(translation_run):
    run_dir, _, result = translation_run
    summary = check_pairs_and_summary(run_dir)
    assert [m["metric"] for m in summary["metrics"]] == ["chrf", "bleu", "ter", "term_accuracy"]
    for metric in summary["metrics"]:
        for key in ("sft_vs_base", "dpo_vs_sft"):
            d = metric[key]
            assert d["ci_low"] <= d["value"] <= d["ci_high"] and 0 < d["p_value"] <= 1
    chrf = summary["metrics"][0]
    evaluation = manifest(run_dir)["eval"]
    assert chrf["dpo"] == evaluation["dpo"]["test"]["chrf"] and chrf["sft"] == evaluation["sft"]["test"]["chrf"]
    assert chrf["dpo_vs_sft"]["value"] == pytest.approx(chrf["dpo"] - chrf["sft"], abs=1e-3)
    for name in ("base", "sft", "dpo"):  # each value with its own 95% bootstrap interval
        assert chrf[f"{name}_ci"][0] - 1e-3 <= chrf[name] <= chrf[f"{name}_ci"][1] + 1e-3
    # held-out preference accuracy on the pairs kept out of DPO training, DPO also by implicit reward
    p = summary["preference_accuracy"]
    assert p["dpo"]["n"] == manifest(run_dir)["pairs"]["heldout"] and "reward_accuracy" in p["dpo"]
    assert "win-rate DPO vs SFT" in result.output and "Report:" in result.output
    from medtune.models.export import model_folder_of

    assert model_folder_of(run_dir) == Path(summary["dpo_model"])  # medtune export RUN exports the final model
    assert "medtune" in (Path(summary["dpo_model"]) / "README.md").read_text(encoding="utf-8")  # its model card


def test_rerun_skips_every_stage(translation_run, tiny_marian_dir):
    run_dir, home, _ = translation_run
    before = manifest(run_dir)
    result = run_rlaif("translate-rlaif", tiny_marian_dir, run_dir, home, "data.sample=80", extra=("--resume",))
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped") == len(STAGES)
    assert manifest(run_dir) == before


def test_from_judge_reruns_judge_to_report_only(translation_run, tiny_marian_dir):
    run_dir, home, _ = translation_run
    before = manifest(run_dir)
    result = run_rlaif("translate-rlaif", tiny_marian_dir, run_dir, home, "data.sample=80", extra=("--from", "judge"))
    assert result.exit_code == 0, result.output
    skipped = [s for s in STAGES if f"Stage {s}: inputs unchanged" in result.output]
    assert skipped == ["data", "sft", "generate"]
    after = manifest(run_dir)
    assert {s: after[s]["fingerprint"] for s in STAGES} == {s: before[s]["fingerprint"] for s in STAGES}
    assert after["pairs"]["pairs"] == before["pairs"]["pairs"]  # the same candidates, judged again alike


def test_a_changed_margin_reruns_pairs_and_what_follows(translation_run, tiny_marian_dir):
    run_dir, home, _ = translation_run
    before = manifest(run_dir)
    result = run_rlaif(
        "translate-rlaif", tiny_marian_dir, run_dir, home, "data.sample=80", "pairs.margin=0.02",
        extra=("--resume", "--force"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    skipped = [s for s in STAGES if f"Stage {s}: inputs unchanged" in result.output]
    assert skipped == ["data", "sft", "generate", "judge"]  # candidates and judgments are kept
    after = manifest(run_dir)
    assert after["judge"]["fingerprint"] == before["judge"]["fingerprint"]
    assert after["pairs"]["fingerprint"] != before["pairs"]["fingerprint"] and after["pairs"]["margin"] == 0.02


def test_kill_while_judging_loses_no_finished_judgment(tiny_marian_dir, tmp_path, monkeypatch):
    from medtune.judge.reference import ReferenceJudge

    score, calls = ReferenceJudge.score, []

    def interrupted_after_one_batch(self, items):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second batch is judged
        return score(self, items)

    monkeypatch.setattr(ReferenceJudge, "batch_size", 5)
    monkeypatch.setattr(ReferenceJudge, "score", interrupted_after_one_batch)
    run_dir, home = tmp_path / "run", tmp_path / "home"
    killed = run_rlaif("translate-rlaif", tiny_marian_dir, run_dir, home, "data.sample=80")
    assert killed.exit_code == 130  # the shell's code for an interrupt
    assert "judge" not in manifest(run_dir)
    first = (run_dir / "judge" / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(first) == 5  # the finished batch is on disk

    judged_again: list[str] = []

    def spy(self, items):
        judged_again.extend(item.id for item in items)
        return score(self, items)

    monkeypatch.setattr(ReferenceJudge, "score", spy)
    # medtune train runs the same stages up to dpo (no evaluation): the judge stage resumes its own work
    args = ["train", "translate-rlaif", "--resume"]
    resumed = run_cli(
        [
            *args,
            *[
                a
                for s in (f"model={tiny_marian_dir}", f"run_dir={run_dir}", *TINY, "data.sample=80")
                for a in ("--set", s)
            ],
        ],
        home=home,
    )
    assert resumed.exit_code == 0, resumed.output
    assert list(manifest(run_dir)) == STAGES[:6]
    total = manifest(run_dir)["judge"]["judged"]
    finished_ids = {json.loads(line)["id"] for line in first}
    assert not finished_ids & set(judged_again)  # no finished judgment was asked for again
    assert len(judged_again) == total - 5
    after = (run_dir / "judge" / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
    assert after[:5] == first and len(after) == total
    assert Path(manifest(run_dir)["dpo"]["dpo_model"]).is_dir()


QA_ROWS = [
    ("What does metformin treat?", "Metformin treats type 2 diabetes by lowering blood glucose."),
    ("What is the first-line drug for anaphylaxis?", "Intramuscular adrenaline is the first-line treatment."),
    ("Which vitamin deficiency causes scurvy?", "Scurvy is caused by a lack of vitamin C."),
    ("What does an ACE inhibitor commonly cause?", "A dry cough is a common side effect of ACE inhibitors."),
    ("Where is insulin produced?", "Insulin is produced by the beta cells of the pancreas."),
    ("What reverses an opioid overdose?", "Naloxone reverses the effects of an opioid overdose."),
    ("What does warfarin prevent?", "Warfarin prevents blood clots such as stroke in atrial fibrillation."),
    ("Which organ does hepatitis affect?", "Hepatitis is inflammation of the liver."),
    ("What is a normal resting heart rate?", "A normal adult resting heart rate is 60 to 100 beats per minute."),
    ("What does salbutamol relieve?", "Salbutamol relieves bronchospasm in asthma attacks."),
    ("What causes tuberculosis?", "Tuberculosis is caused by the bacterium Mycobacterium tuberculosis."),
    ("What does a statin lower?", "Statins lower LDL cholesterol and cardiovascular risk."),
    ("What is the antidote to paracetamol poisoning?", "Acetylcysteine is the antidote to paracetamol overdose."),
    ("Which hormone is low in hypothyroidism?", "Thyroxine is low in hypothyroidism."),
    ("What does furosemide do?", "Furosemide is a loop diuretic that removes excess fluid."),
    ("What vaccine prevents measles?", "The MMR vaccine prevents measles, mumps and rubella."),
]


def test_qa_rlaif_free_text_answers_from_an_endpoint_policy(tiny_chat_gemma_dir, tmp_path, medtune_server, monkeypatch):
    """Candidates come from a live ``medtune serve`` (its key read from the variable the recipe names)."""
    monkeypatch.setenv("RLAIF_TEST_POLICY_KEY", medtune_server.api_key)
    data = tmp_path / "qa.jsonl"
    rows = [
        {"id": f"q{i}", "question": q, "long_answer": a, "context": "Clinical pharmacology notes."}
        for i, (q, a) in enumerate(QA_ROWS)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    preferences = tmp_path / "held_out_pairs.jsonl"  # a user's own held-out preference file
    pairs = [{"prompt": q, "chosen": a, "rejected": "I do not know."} for q, a in QA_ROWS[:3]]
    preferences.write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = run_rlaif(
        "qa-rlaif", tiny_chat_gemma_dir, run_dir, tmp_path / "home",
        f"data.train={data}", "data.reference_col=long_answer", "data.test_size=0.25", "data.dev_size=0.1",
        f"eval.preference_data={preferences}",
        f"generate.endpoint={medtune_server.base_url}", f"generate.endpoint_model={medtune_server.model}",
        "generate.api_key_env=RLAIF_TEST_POLICY_KEY",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = check_pairs_and_summary(run_dir)
    assert summary["metrics"] == []  # no multiple-choice test: win-rate and preference accuracy only, said so
    assert any("No multiple-choice test" in note for note in summary["notes"])
    candidates = read_jsonl(run_dir / "candidates" / "candidates.jsonl")
    assert {c["reference"] for c in candidates} <= {a for _, a in QA_ROWS}
    judgments = read_jsonl(run_dir / "judge" / "judgments.jsonl")
    assert all(set(j["criteria"]) == {"similarity", "coverage"} for j in judgments)
    assert manifest(run_dir)["generate"]["policy"] == f"{medtune_server.base_url} ({medtune_server.model})"
    trained = {c["id"] for c in read_jsonl(run_dir / "data" / "train.jsonl")}
    held_out = {p["id"] for p in read_jsonl(run_dir / "data" / "heldout_prompts.jsonl")}
    assert len(held_out) == 4 and not trained & held_out  # win-rate prompts are never trained on
    p = summary["preference_accuracy"]
    assert p["source"] == str(preferences) and p["base"]["n"] == p["dpo"]["n"] == 3


def test_qa_rlaif_letters_with_no_separable_answers_say_what_to_change(tiny_chat_gemma_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_rlaif(
        "qa-rlaif", tiny_chat_gemma_dir, run_dir, tmp_path / "home", "data.sample=24", "train.max_length=512"
    )
    # a random tiny model names no correct option letter: every prompt is all-bad, and the run says so
    assert_user_error(result, "No preference pair could be built", "all_bad 8", "pairs.margin")
    judged = read_jsonl(run_dir / "judge" / "judgments.jsonl")
    assert judged and all(j["score"] == 0 for j in judged)
    assert list(manifest(run_dir)) == ["data", "sft", "generate", "judge"]  # finished work is kept for --resume


def test_endpoint_settings_errors_name_the_key(monkeypatch):
    from medtune.errors import MedtuneError
    from medtune.pipeline.rlaif import build_recipe_judge, policy_endpoint
    from medtune.recipes.loader import load_recipe

    recipe = load_recipe("qa-rlaif", ["generate.endpoint=http://127.0.0.1:9/v1"])
    with pytest.raises(MedtuneError, match="generate.endpoint_model"):
        policy_endpoint(recipe)
    monkeypatch.delenv("MEDTUNE_TEST_KEY", raising=False)
    recipe = load_recipe("qa-rlaif", ["judge.kind=llm", "judge.model=m", "judge.api_key_env=MEDTUNE_TEST_KEY"])
    with pytest.raises(MedtuneError, match="judge.api_key_env=MEDTUNE_TEST_KEY"):
        build_recipe_judge(recipe)
    monkeypatch.setenv("MEDTUNE_TEST_KEY", "sk-test")
    recipe = load_recipe("qa-rlaif", ["generate.endpoint=http://127.0.0.1:9/v1", "generate.endpoint_model=policy"])
    endpoint = policy_endpoint(recipe)
    assert (endpoint.settings.url, endpoint.settings.model) == ("http://127.0.0.1:9/v1", "policy")
    judge_sets = ["judge.kind=llm", "judge.endpoint=http://127.0.0.1:9/v1", "judge.model=judge-model"]
    judge = build_recipe_judge(load_recipe("qa-rlaif", [*judge_sets, "judge.api_key_env=MEDTUNE_TEST_KEY"]))
    assert judge.name == "llm" and hasattr(judge, "compare_many")  # the win-rate then asks both orders


class PositionBiasedJudge:
    """A judge model behind a real uvicorn server that always prefers the answer shown first."""

    def __init__(self) -> None:
        self.requests: list[dict] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append(body)
            content = '{"winner": "A", "rationale": "the first one"}'
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            return {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice]}

        return app


def test_win_rate_with_an_llm_judge_asks_both_orders(tmp_path):
    from live_server import uvicorn_in_thread

    from medtune.data.io import write_jsonl
    from medtune.pipeline.rlaif import RlaifStages
    from medtune.pipeline.rlaif_eval import win_rate
    from medtune.recipes.loader import load_recipe
    from medtune.runs import RunFolder

    def answers(name: str) -> Path:
        rows = [
            {"id": f"{name}{i}", "prompt_id": f"p{i}", "prompt": f"Question {i}?", "text": f"{name} answer {i}"}
            for i in range(3)
        ]
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
        return tmp_path / f"{name}.jsonl"

    server = PositionBiasedJudge()
    with uvicorn_in_thread(server.app()) as url:
        recipe = load_recipe("qa-rlaif", ["judge.kind=llm", f"judge.endpoint={url}", "judge.model=judge-m"])
        w = win_rate(RlaifStages(recipe, RunFolder(tmp_path / "run", "qa-rlaif")), answers("sft"), answers("dpo"))
    # every verdict flips with the order: no consistent winner, so every prompt is a tie
    assert (w["mode"], w["n"], w["ties"], w["wins"], w["position_consistency"]) == (
        "pairwise, both orders",
        3,
        3,
        0,
        0.0,
    )
    assert len(server.requests) == 6 and {r["model"] for r in server.requests} == {"judge-m"}
    verdicts = read_jsonl(tmp_path / "run" / "eval" / "win_rate" / "verdicts.jsonl")
    assert [(v["prompt_id"], v["winner"], v["consistent"]) for v in verdicts] == [
        (f"p{i}", "tie", False) for i in range(3)
    ]


def test_data_stage_keeps_held_out_items_out_of_training(tmp_path):
    from medtune.pipeline.rlaif_data import RlaifData, prepare_rlaif_data
    from medtune.recipes.loader import load_recipe

    record = prepare_rlaif_data(load_recipe("qa-rlaif"), tmp_path / "mcq", log=lambda _: None)
    data = RlaifData.read(tmp_path / "mcq")
    assert record["answers"] == "letter" and record["mcq_test"] == 44  # 25% of the 176 bundled questions
    trained = {c["id"] for c in data.train}
    assert {p["id"] for p in data.prompts} == trained  # candidates are sampled for the SFT questions
    assert [p["id"] for p in data.heldout_prompts] == [q["id"] for q in data.mcq_test]
    assert not trained & {q["id"] for q in data.mcq_test}
    assert all(p["gold"] in "ABCDE" and p["prompt"][-1]["role"] == "user" for p in data.prompts)

    test = tmp_path / "test.jsonl"
    medical = read_jsonl(
        Path(__file__).resolve().parents[2] / "src" / "medtune" / "data" / "demo" / "medical_en_es.jsonl"
    )
    test.write_text("".join(json.dumps({"en": r["en"], "es": r["es"]}) + "\n" for r in medical[:10]), encoding="utf-8")
    recipe = load_recipe("translate-rlaif", [f"data.test={test}"])
    record = prepare_rlaif_data(recipe, tmp_path / "translation", log=lambda _: None)
    data = RlaifData.read(tmp_path / "translation")
    assert record["test"] == 10 and record["answers"] == "translation"
    sources = {r["en"] for r in medical[:10]}
    assert not sources & {p["src"] for p in data.train} and {p["prompt"] for p in data.heldout_prompts} == sources
    assert {p["reference"] for p in data.prompts} == {p["tgt"] for p in data.train}


LETTER_ANSWERS = [  # distinct texts: "Answer: A." and "Answer: B." alone would be near duplicates of each other
    "Answer: A. I pick the first option.",
    "Answer: B. The second one is right.",
    "Answer: C. Clearly this is the third.",
    "Answer: D. My choice: the last one.",
]


class LetterPolicy:
    """A policy behind a real uvicorn server whose n samples answer options A, B, C, D in turn."""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            choices = [
                {
                    "index": k,
                    "message": {"role": "assistant", "content": LETTER_ANSWERS[k % 4]},
                    "finish_reason": "stop",
                }
                for k in range(body.get("n", 1))
            ]
            return {"id": "p", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices}

        return app


def test_qa_rlaif_multiple_choice_accuracy_of_base_sft_and_dpo(tiny_chat_gemma_dir, tmp_path):
    """Letter answers judged against the gold letter: every question whose gold is A-D gives a pair."""
    from live_server import uvicorn_in_thread

    run_dir = tmp_path / "run"
    with uvicorn_in_thread(LetterPolicy().app()) as url:
        result = run_rlaif(
            "qa-rlaif", tiny_chat_gemma_dir, run_dir, tmp_path / "home",
            "data.sample=24", "train.max_length=512", "generate.n=4", "eval.few_shot=1", "eval.mcq_modes=[loglik]",
            f"generate.endpoint={url}", "generate.endpoint_model=letters",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = check_pairs_and_summary(run_dir)
    candidates = read_jsonl(run_dir / "candidates" / "candidates.jsonl")
    golds = {c["prompt_id"]: c["gold"] for c in candidates}
    assert summary["pairs"]["pairs"] == sum(g in "ABCD" for g in golds.values())
    for pair in read_jsonl(run_dir / "pairs" / "pairs.jsonl"):
        assert pair["chosen"] == LETTER_ANSWERS["ABCD".index(golds[pair["prompt_id"]])] and pair["chosen_score"] == 1.0
    stages = manifest(run_dir)
    (row,) = summary["metrics"]
    for name in ("base", "sft", "dpo"):
        m = stages["eval"][name]["mcq_loglik"]
        assert m["n"] == 4 and row[name] == pytest.approx(100 * m["accuracy"])
    assert (
        stages["eval"]["base"]["mcq_loglik"]["few_shot"] == 1 and stages["eval"]["dpo"]["mcq_loglik"]["few_shot"] == 0
    )
    sft = [r["correct"] for r in read_jsonl(run_dir / "eval" / "sft" / "mcq_loglik" / "outputs.jsonl")]
    dpo = [r["correct"] for r in read_jsonl(run_dir / "eval" / "dpo" / "mcq_loglik" / "outputs.jsonl")]
    assert row["dpo_vs_sft"]["value"] == pytest.approx(100 * (sum(dpo) - sum(sft)) / 4, abs=1e-4)


def test_the_sft_stage_ignores_the_keys_only_the_preference_stage_reads():
    """Changing the DPO/KTO/RLHF settings retrains that stage, not the SFT model under it (rlaif, full_training)."""
    from medtune.pipeline.rlaif import SFT_READS
    from medtune.runs import reads_key

    def read(key: str) -> bool:
        return any(reads_key(pattern, key) for pattern in SFT_READS)

    preference_only = ["objective", "beta", "sft_weight", "kto_desirable_weight", "max_steps", "lr", "epochs"]
    assert not any(read(f"train.{key}") for key in preference_only)
    assert all(read(key) for key in ["train.lora.r", "train.batch_size", "train.max_length", "train.dtype", "sft.lr"])
