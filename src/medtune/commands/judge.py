"""``medtune judge``: run a judge on a file of answers or answer pairs, or calibrate it against human scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medtune.errors import MedtuneError

JUDGE_HELP = (
    "The judge: 'reference' (offline: gold letter, or similarity with the reference answer plus key-point coverage; "
    "with --task translation sentence chrF++), 'llm' (a rubric sent to --judge-model, at --endpoint or loaded "
    "locally), or an ensemble written 'ensemble:reference=0.5,llm=0.5' (member=weight, comma-separated)."
)
WEIGHTS_HELP = (
    "Weights as name=value pairs, comma-separated. reference: similarity=0.7,coverage=0.3 (the defaults). llm: the "
    "rubric's criteria and their weights, e.g. factual_accuracy=2,completeness=1 (default: factual_accuracy, "
    "completeness, key_point_coverage, equal). ensemble: member weights reference=0.5,llm=0.5 and members' own "
    "weights prefixed with the member's name, e.g. reference.similarity=0.6."
)


def judge(
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: judgments.jsonl and metrics.json (calibration.json with --calibrate); a re-run continues from the judgments already made there."
        ),
    ],
    judge_spec: Annotated[str, typer.Option("--judge", help=JUDGE_HELP)] = "reference",
    data: Annotated[
        str | None,
        typer.Option(
            help="Rows to judge (.jsonl/.csv/.tsv): single answers {prompt, answer} or pairs {prompt, chosen, rejected}, "
            "each optionally with id, gold (an option letter), reference (a reference answer) and key_points (a list)."
        ),
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="Instead of --data: single-answer rows with a human 'human_score'; reports Spearman and Pearson "
            "correlation and pairwise accuracy (answers to the same prompt) with 95% bootstrap intervals."
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="llm judge: base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    ] = None,
    judge_model: Annotated[
        str | None,
        typer.Option(
            help="llm judge: the model name at --endpoint, or without --endpoint a model medtune loads locally (path, hub id, training output)."
        ),
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="llm judge: the endpoint's API key (default: none).")] = None,
    glossary: Annotated[
        str | None,
        typer.Option(
            help="reference judge: a glossary (columns en, es) whose terms in a reference count as key points."
        ),
    ] = None,
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    task: Annotated[
        str,
        typer.Option(
            help="qa (answers to questions) or translation (reference judge: sentence chrF++ against 'reference')."
        ),
    ] = "qa",
    pairwise: Annotated[
        bool,
        typer.Option(
            "--pairwise",
            help="llm judge on pairs: ask which answer is better, twice with the order swapped (inconsistent verdicts become ties); reports position_consistency.",
        ),
    ] = False,
    policy_model: Annotated[
        str | None,
        typer.Option(help="The model that wrote the answers; a warning is printed when it is also the judge."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="llm judge at an endpoint: requests in flight at once.")] = 8,
) -> None:
    """Score answers (or answer pairs) with a judge, or calibrate a judge against human scores.

    Runs in one process: under accelerate launch or torchrun every process stops with exit code 2 and
    the main one says why (the rlaif recipes' judge stage shares its judging across processes).
    """
    from medtune.cli import _fail, _log
    from medtune.judge.build import build_judge, parse_weight_pairs
    from medtune.judge.files import calibrate_rows, judge_pairs_pairwise, judge_rows
    from medtune.judge.rows import load_judge_rows
    from medtune.sharding import quiet_unless_main
    from medtune.train.distributed import world

    main, processes = quiet_unless_main(), world()[1]
    if processes > 1:
        if main:
            _fail(
                MedtuneError(
                    f"medtune judge runs in one process, but {processes} were started (WORLD_SIZE is set by "
                    "torchrun/accelerate launch): start it without the launcher. The rlaif recipes' judge stage "
                    "shares its judging across processes."
                )
            )
        raise typer.Exit(2)
    try:
        if (data is None) == (calibrate is None):
            raise MedtuneError("Give exactly one of --data FILE (answers to judge) or --calibrate HUMAN_FILE.")
        rows = load_judge_rows(data or calibrate, need_human=calibrate is not None)
        spec = build_judge(
            judge_spec,
            endpoint=endpoint,
            model=judge_model,
            api_key=api_key,
            glossary=glossary,
            weights=parse_weight_pairs(weights),
            task=task,
            policy_model=policy_model,
            concurrency=concurrency,
            log=_log,
        )
        if pairwise and not hasattr(spec, "compare_many"):
            raise MedtuneError(
                f"--pairwise needs the llm judge (it asks a model to compare); got --judge {judge_spec}."
            )
        if calibrate is not None:
            metrics = calibrate_rows(spec, rows, out, log=_log)
            written = out / "calibration.json"
        elif pairwise:
            metrics = judge_pairs_pairwise(spec, rows, out, log=_log)
            written = out / "metrics.json"
        else:
            metrics = judge_rows(spec, rows, out, log=_log)
            written = out / "metrics.json"
    except MedtuneError as exc:
        _fail(exc)
    shown = {k: v for k, v in metrics.items() if k not in ("failed", "fingerprint")}
    _log(json.dumps(shown, indent=2))
    if metrics.get("failed"):
        _log(f"{len(metrics['failed'])} answer(s) got no score (listed under 'failed' in {written}).")
    _log(f"Wrote {written}")
