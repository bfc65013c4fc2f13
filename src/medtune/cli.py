"""The ``medtune`` command. Thin: parse options, call one pipeline or stage function, print."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medtune.commands.data import data_app
from medtune.commands.feedback import feedback_app
from medtune.commands.judge import judge
from medtune.commands.options import CacheOpt, CompileOpt, DeviceOpt, DtypeOpt
from medtune.commands.serve import serve
from medtune.errors import MedtuneError

app = typer.Typer(
    help="Fine-tune a general language model into a medical specialist and prove it improved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# PEFT still calls a transformers 5 name that is being renamed; the warning is noise for users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

RecipeArg = Annotated[
    str, typer.Argument(help="A bundled recipe name (see 'medtune recipes') or a path to a recipe YAML file.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key, e.g. --set train.lr=1e-4 --set data.train=my.csv (repeatable)."),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the run in its folder: skip finished stages, continue training from its last checkpoint. "
        "Refused when the recipe changed since the run began (the error names the changed keys).",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="With --resume: accept a changed recipe or changed input files. Re-runs the finished stages whose "
        "settings or input files changed and every stage that uses their results (training starts afresh if its "
        "settings or data changed); recorded in run.json.",
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        metavar="STAGE",
        help="Re-run this stage and every stage after it, keeping the earlier ones (implies --resume). "
        "Stages: data, eval_base, eval_base_zero_shot, train, eval_tuned, report (medtune train: data, train); "
        "rlaif recipes: data, sft, generate, judge, pairs, dpo, eval, report (medtune train: data to dpo); "
        "feedback-rlhf: data, train, eval (all run by medtune train). "
        "full-training: data, eval_base, sft, eval_sft, queue, feedback, rlhf, eval_rlhf, eval_post_edits, report "
        "(medtune train: data, sft, queue, feedback, rlhf). "
        "A stage's earlier outputs are deleted only once it succeeded.",
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Start again in a folder that holds an earlier medtune run: the old run is deleted once the new "
        "data are loaded and validated (kept if that fails). A folder medtune did not make is never deleted.",
    ),
]


def _log(message: str) -> None:
    console.print(message, highlight=False)


def _quiet(message: str) -> None:
    """The log of a process other than the main one of a launch: the main process tells the user."""


# Ctrl-C after the work so far was saved: the shell's exit code for an interrupt.
INTERRUPTIONS = ("TrainingInterrupted", "GenerationInterrupted")


def _fail(exc: MedtuneError) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=130 if type(exc).__name__ in INTERRUPTIONS else 2)


def _metrics_table(title: str, metrics: list[dict]) -> Table:
    """The final table of ``medtune run``: the three columns, each delta with its 95% interval and verdict."""
    from medtune.report.formatting import format_delta_with_interval, format_value

    table = Table(title=title)
    for column in ("metric", "base few-shot", "base zero-shot", "fine-tuned", "delta [95% CI]", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for m in metrics:
        few, zero = format_value(m["base"]), format_value(m["base_zero_shot"])
        if m["headline_base"] == "few_shot" and m["base"] is not None:
            few += " *"
        elif m["headline_base"] == "zero_shot" and m["base_zero_shot"] is not None:
            zero += " *"
        interval = None if m["delta_ci_low"] is None else (m["delta_ci_low"], m["delta_ci_high"])
        verdict = "" if m["p_value"] is None else f"{m['verdict']} (p = {m['p_value']:.3f})"
        table.add_row(
            m["label"], few, zero, format_value(m["tuned"]), format_delta_with_interval(m["delta"], interval), verdict
        )
    table.caption = "* headline base: the better base on the test set's main metric; delta = fine-tuned minus it"
    return table


@app.command()
def run(
    recipe: RecipeArg = "translate-en-es",
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
    overwrite: OverwriteOpt = False,
    from_stage: FromOpt = None,
) -> None:
    """Run a whole recipe: score the base model, fine-tune, score again, write the report.

    Recipes with pipeline rlaif (qa-rlaif, translate-rlaif): SFT, sample candidates, judge them, build preference pairs, DPO, then compare base, SFT and DPO on held-out items.

    Pipeline full_training (full-training): SFT, queue the SFT model's translations of a feedback set into the feedback store, a feedback round (simulated offline, or human reviewers: the run stops until they judged, then --resume), RLHF from the judgments, then base, SFT and RLHF compared on the test split and on held-out post-edits.
    """
    from medtune.pipeline import run_recipe
    from medtune.recipes.loader import load_recipe
    from medtune.runs import is_main_process

    try:
        summary = run_recipe(
            load_recipe(recipe, set_), resume=resume, overwrite=overwrite, force=force, log=_log, from_stage=from_stage
        )
    except MedtuneError as exc:
        _fail(exc)
    if not is_main_process():  # under a launcher the main process prints the one result
        return
    # Piped output (logs, CI) gets the whole table on one line per metric instead of 80 wrapped columns.
    out = Console(width=None if sys.stdout.isatty() else 150)
    if summary.get("pipeline") == "rlaif":
        from medtune.report.rlaif import report_paths, rlaif_table

        out.print(rlaif_table(summary))
        _log(report_paths(summary))
        return
    if summary.get("pipeline") == "full_training":
        from medtune.report.full_training import full_training_table
        from medtune.report.rlaif import report_paths

        out.print(full_training_table(summary))
        _log(report_paths(summary))
        return
    out.print(_metrics_table(f"{summary['recipe']}: before vs after", summary["metrics"]))
    for check in summary.get("checks", []):
        _log(check["message"])
    _log(f"Report: {summary['report_html']}  Model: {summary['output_dir']}")


REWARD_TABLE_KEYS = (
    "heldout_items",
    "spearman",
    "spearman_ci_low",
    "spearman_ci_high",
    "pairwise_accuracy",
    "chrf_spearman",
)


@app.command()
def train(
    recipe: RecipeArg,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
    overwrite: OverwriteOpt = False,
    from_stage: FromOpt = None,
) -> None:
    """Fine-tune only: validate and split the data, train, save the model to the recipe's output_dir."""
    from medtune.pipeline import train_recipe
    from medtune.recipes.loader import load_recipe
    from medtune.runs import is_main_process

    try:
        path = train_recipe(
            load_recipe(recipe, set_), resume=resume, overwrite=overwrite, force=force, log=_log, from_stage=from_stage
        )
    except MedtuneError as exc:
        _fail(exc)
    if not is_main_process():  # under a launcher the main process prints the one result
        return
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    table = Table(title="training")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("steps", "train_loss", "dev_loss", "target_tokens_per_s", "train_seconds", "trainable_params"):
        value = metrics.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    for key in REWARD_TABLE_KEYS:  # a reward model's held-out figures (feedback-reward)
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    _log(f"Model saved to {path}")


EVAL_TASKS = ("translation", "mcq", "perplexity", "preference")
# What each task's table shows, in order (metrics.json holds everything).
EVAL_TABLE_KEYS = {
    "translation": ("n", "bleu", "chrf", "ter", "term_accuracy", "sentences_per_s"),
    "mcq": ("n", "accuracy", "ci_low", "ci_high", "correct", "unparsed", "truncated", "items_per_s"),
    "perplexity": ("n", "n_tokens", "perplexity", "mean_nll", "tokens_per_s"),
    "preference": ("n", "accuracy", "ci_low", "ci_high", "mean_margin", "reward_accuracy", "mean_reward_margin"),
}


def _check_eval_source(
    task: str, model: str | None, outputs: str | None, compare_to: str | None, few_shot: int, few_shot_data: str | None
) -> None:
    """Exactly one of --model / --outputs; --outputs and --compare-to only score translations."""
    if (model is None) == (outputs is None):
        raise MedtuneError(
            "Give exactly one of --model (translate with a model, then score) or --outputs (score existing "
            f"translations); got {'both' if model else 'neither'}."
        )
    if outputs and task != "translation":
        raise MedtuneError(f"--outputs scores existing translations; it needs --task translation, not {task!r}.")
    if compare_to and not outputs:
        raise MedtuneError(
            "--compare-to needs --outputs: score the model first (medtune eval --model ... --out DIR), then "
            "compare with --outputs DIR/outputs.jsonl --compare-to OTHER."
        )
    if outputs and (few_shot or few_shot_data):
        raise MedtuneError("--few-shot and --few-shot-data build model prompts; they do not apply to --outputs.")


@app.command("eval")
def eval_(
    data: Annotated[
        str,
        typer.Option(
            help="Data to score: translation pairs, multiple-choice questions, documents/conversations "
            "(perplexity) or preference pairs (prompt/chosen/rejected, or messages-style chosen/rejected); .jsonl/.csv/.tsv, demo:<file> or hf:<dataset>[:split] (perplexity also .txt or a folder)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for metrics.json, outputs.jsonl and evaluation.json (what was scored); must be new or "
            "empty, or hold this same evaluation (see --overwrite)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="gemma-3-270m, a Hugging Face id, a local model folder or a medtune training output "
            "(or, for translation, score existing translations with --outputs instead)."
        ),
    ] = None,
    outputs: Annotated[
        str | None,
        typer.Option(
            help="Translation: score these existing translations (another system's; .jsonl/.csv/.tsv rows with "
            "'output', joined to --data by 'id', else by row order) instead of a --model's. No model is loaded."
        ),
    ] = None,
    compare_to: Annotated[
        str | None,
        typer.Option(
            help="With --outputs: a second system's translations of the same data; metrics.json gets 'delta' = "
            "--outputs minus this, with 95% paired-bootstrap intervals and p-values."
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            help="What to evaluate: translation (BLEU, chrF++, TER), mcq (accuracy with a 95% bootstrap interval), "
            "perplexity, or preference (share of prompt/chosen/rejected pairs whose chosen answer the model prefers, "
            "with a 95% bootstrap interval; a DPO/KTO output folder also gets its implicit-reward accuracy "
            "against its recorded reference model)."
        ),
    ] = "translation",
    src_col: Annotated[str, typer.Option(help="Source-text column (translation).")] = "en",
    tgt_col: Annotated[str, typer.Option(help="Reference-translation column (translation).")] = "es",
    src_lang: Annotated[
        str,
        typer.Option(
            help="Source language code used in the prompt (translation; preference pairs encoded as translation)."
        ),
    ] = "en",
    tgt_lang: Annotated[
        str,
        typer.Option(
            help="Target language code used in the prompt (translation; preference pairs encoded as translation)."
        ),
    ] = "es",
    glossary: Annotated[
        str | None, typer.Option(help="Term glossary (columns en/es) for terminology accuracy (translation).")
    ] = None,
    few_shot: Annotated[
        int,
        typer.Option(
            min=0,
            help="Solved examples put in the prompt (translation pairs or mcq questions), for base models that "
            "were never fine-tuned.",
        ),
    ] = 0,
    few_shot_data: Annotated[
        str | None, typer.Option(help="Where few-shot examples come from; default: taken from --data and not scored.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score only the first N pairs, questions or documents.")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Sequences per batch (default: 16 for translation, 8 for mcq and perplexity; preference: 8 pairs, "
            "chosen and rejected in one batch).",
        ),
    ] = None,
    num_beams: Annotated[int, typer.Option(min=1, help="1 = greedy decoding; more = beam search (translation).")] = 1,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Longest generated text in tokens (default: 160 for translation, 32 for mcq --mode generate).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed for choosing few-shot examples and for the bootstrap.")] = 42,
    mode: Annotated[
        str,
        typer.Option(
            help="mcq: loglik (score each option letter's log-likelihood after 'Answer:') or generate (greedy "
            "reply, letter read from the text)."
        ),
    ] = "loglik",
    max_length: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Context window in tokens (default: 1024 for mcq, where long contexts are cut from the left; "
            "512 for perplexity windows; 1024 for preference, where longer prompt + answer sequences are cut at "
            "the end).",
        ),
    ] = None,
    text_col: Annotated[str, typer.Option(help="Text column of documents (perplexity on text).")] = "text",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="perplexity: text (every token), conversations (assistant tokens only) or auto (conversations "
            "when rows have messages/conversations/instruction/question+answer columns).",
        ),
    ] = "auto",
    prompt_format: Annotated[
        str,
        typer.Option(
            help="preference: how a pair is encoded: translation (the prompt is the source sentence: medtune's "
            "translation prompt, or the source for a seq2seq model), chat (the chat template, the answer as the "
            "assistant turn) or auto (what a medtune model was trained for; translation for seq2seq models; "
            "else chat)."
        ),
    ] = "auto",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the results in --out when they are an earlier run of this same evaluation (same task, data "
            "and model or --outputs file); any other non-empty folder is refused.",
        ),
    ] = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Score a model on a file: translation quality, multiple-choice accuracy, or perplexity.

    Under accelerate launch or torchrun each process scores its share of the items; the main process
    writes the files and prints the result.
    """
    from medtune.eval.out_folder import EvaluationIdentity, check_eval_out, record_evaluation
    from medtune.sharding import quiet_unless_main

    main = quiet_unless_main()  # joins the process group first, so under a launcher each process picks its own GPU
    log = _log if main else _quiet
    try:
        if task not in EVAL_TASKS:
            raise MedtuneError(f"--task {task!r} is not supported; supported tasks: {', '.join(EVAL_TASKS)}.")
        _check_eval_source(task, model, outputs, compare_to, few_shot, few_shot_data)
        identity = EvaluationIdentity.of(task, data, model=model, outputs=outputs)
        check_eval_out(out, identity, overwrite)  # before any data or model is loaded
        if outputs:
            from medtune.eval.translation import score_translation_outputs_file

            metrics = score_translation_outputs_file(
                data, outputs, out, src_col, tgt_col, glossary, compare_to, limit, seed, log=log
            )
        elif task == "mcq":
            from medtune.eval.mcq import evaluate_mcq_file

            metrics = evaluate_mcq_file(
                model,
                data,
                out,
                mode,
                few_shot,
                few_shot_data,
                limit,
                batch_size or 8,
                max_length or 1024,
                max_new_tokens or 32,
                seed,
                log=log,
                device=device,
                dtype=dtype,
            )
        elif task == "preference":
            from medtune.eval.preference import evaluate_preference_file

            metrics = evaluate_preference_file(
                model,
                data,
                out,
                prompt_format,
                limit,
                batch_size or 8,
                max_length or 1024,
                seed,
                src_lang,
                tgt_lang,
                log=log,
                device=device,
                dtype=dtype,
            )
        elif task == "perplexity":
            from medtune.eval.perplexity import evaluate_perplexity_file

            metrics = evaluate_perplexity_file(
                model,
                data,
                out,
                fmt,
                text_col,
                limit,
                max_length or 512,
                batch_size or 8,
                log=log,
                device=device,
                dtype=dtype,
            )
        else:
            from medtune.eval.translation import evaluate_translation_file

            metrics = evaluate_translation_file(
                model,
                data,
                out,
                src_col=src_col,
                tgt_col=tgt_col,
                src_lang=src_lang,
                tgt_lang=tgt_lang,
                glossary=glossary,
                few_shot=few_shot,
                few_shot_data=few_shot_data,
                limit=limit,
                batch_size=batch_size or 16,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens or 160,
                seed=seed,
                log=log,
                device=device,
                dtype=dtype,
            )
        if main:
            record_evaluation(out, identity)  # only a finished evaluation claims the folder
    except MedtuneError as exc:
        _fail(exc)
    if not main:
        return
    table = Table(title=f"{model or outputs} on {data} ({task})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in EVAL_TABLE_KEYS[task]:
        if key in metrics and metrics[key] is not None:
            table.add_row(key, str(metrics[key]))
    for key, delta in metrics.get("delta", {}).items():
        verdict = "significant at 95%" if delta["significant"] else "not significant"
        table.add_row(
            f"{key} delta vs {compare_to}",
            f"{delta['value']:+.4g} [{delta['ci_low']:+.4g}, {delta['ci_high']:+.4g}] p={delta['p_value']:.3g}, {verdict}",
        )
    Console().print(table)
    _log(f"Wrote {out / 'metrics.json'} and {out / 'outputs.jsonl'}")


@app.command()
def export(
    run_or_model: Annotated[
        Path, typer.Argument(metavar="RUN", help="A run folder (runs/<name>) or a trained model folder.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write the exported model to (new or empty). Optional with --push-to-hub."),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Merge the LoRA adapter into its base: a standalone model that loads with plain from_pretrained. "
            "Without it the model folder is exported as it is (the adapter with its card), which needs a base "
            "that is a Hugging Face id.",
        ),
    ] = False,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            metavar="OWNER/NAME",
            help="Upload the model with its model card to this Hugging Face repository, in one commit "
            "(token: HF_TOKEN or 'hf auth login').",
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the hub repository private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List every file --push-to-hub would upload, with sizes; upload nothing.")
    ] = False,
) -> None:
    """Export a trained model: merged or as it is, to a folder (--out) and/or the Hugging Face Hub (--push-to-hub)."""
    from medtune.models.export import export_model

    try:
        # file paths and the upload list stay on one line each, printed as they are (no markup)
        log = functools.partial(console.print, highlight=False, soft_wrap=True, markup=False)
        export_model(run_or_model, out, merge, push_to_hub, private, dry_run, log=log)
    except MedtuneError as exc:
        _fail(exc)


@app.command()
def recipes() -> None:
    """List the bundled recipes, one line each."""
    from medtune.recipes.loader import bundled_recipes, load_recipe

    for name in bundled_recipes():
        r = load_recipe(name)
        kind = r.task if r.pipeline == "before_after" else f"{r.task}, {r.pipeline}"
        typer.echo(f"{name:<22} [{kind}] {r.description}")


ChatModelOpt = Annotated[
    str, typer.Option(help="gemma-3-270m, a Hugging Face id, a local model folder or a medtune training output.")
]
SystemOpt = Annotated[
    str | None,
    typer.Option(help="System prompt (a first system turn); default: the one a medtune chat model was trained with."),
]
MaxNewTokensOpt = Annotated[int, typer.Option(min=1, help="Longest reply in tokens.")]
TopPOpt = Annotated[float, typer.Option(help="Sample only from the most likely tokens holding this probability.")]


def _write_now(text: str) -> None:
    typer.echo(text, nl=False)  # flushes, so streamed tokens appear as they come


@app.command()
def chat(
    model: ChatModelOpt,
    system: SystemOpt = None,
    max_new_tokens: MaxNewTokensOpt = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy (deterministic).")] = 0.7,
    top_p: TopPOpt = 0.9,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed for reproducible replies (default: random).")] = None,
    max_context: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tokens prompt + reply may use; the oldest turns are dropped beyond it (default: model limit).",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Chat with a model in the terminal; replies stream as they are generated. /help lists commands."""
    from medtune.generate.chat_session import ChatSession, run_repl
    from medtune.generate.engine import SamplingSettings
    from medtune.models.loading import load_model

    try:
        settings = SamplingSettings(max_new_tokens, temperature, top_p)
        loaded = load_model(model, dtype=dtype, device=device, log=_log)
        if system is None and loaded.trained_system_prompt:
            system = loaded.trained_system_prompt
            _log(f"System prompt (from training): {system}")
        session = ChatSession(loaded.model, loaded.tokenizer, settings, system, seed, max_context)
    except MedtuneError as exc:
        _fail(exc)
    if sys.stdin.isatty():
        import readline  # noqa: F401  (arrow keys and history in input())
    info = loaded.runtime_info()
    _log(
        f"Chatting with {model} on {info['device']} ({info['device_name']}, {info['dtype']}); "
        f"temperature {temperature}, seed {session.seed}."
    )
    run_repl(session, input, _write_now)


@app.command()
def generate(
    model: ChatModelOpt,
    data: Annotated[str, typer.Option(help="Prompts: .jsonl/.csv/.tsv rows with a prompt string or a messages list.")],
    out: Annotated[Path, typer.Option(help="Answers (JSONL). Rerunning skips the prompts already answered there.")],
    prompt_col: Annotated[str, typer.Option(help="Column holding the prompt text.")] = "prompt",
    id_col: Annotated[str, typer.Option(help="Column identifying each row (default: the row number).")] = "id",
    system: SystemOpt = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy.")] = 0.0,
    top_p: TopPOpt = 1.0,
    max_new_tokens: MaxNewTokensOpt = 256,
    num_return_sequences: Annotated[int, typer.Option(min=1, help="Answers per prompt.")] = 1,
    seed: Annotated[
        int, typer.Option(min=0, help="Base seed; each prompt's samples depend only on it and the id.")
    ] = 42,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts generated per batch.")] = 8,
    chat_template: Annotated[
        bool, typer.Option("--chat/--no-chat", help="Render prompts with the chat template, or send raw text.")
    ] = True,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    cache: CacheOpt = "dynamic",
    compile_step: CompileOpt = False,
) -> None:
    """Answer every prompt of a file: batched, reproducible, resumable; one JSONL row per prompt.

    Under torchrun or accelerate launch each process answers its share; the main process writes the file.
    """
    from medtune.generate.engine import DecodingOptions, SamplingSettings
    from medtune.generate.prompt_file import check_answers_path, generate_prompt_file, read_prompt_rows
    from medtune.models.loading import load_model
    from medtune.sharding import quiet_unless_main

    try:
        settings = SamplingSettings(max_new_tokens, temperature, top_p)
        decoding = DecodingOptions(cache, compile_step, option_names=("--cache", "--compile"))
        check_answers_path(data, out)
        rows = read_prompt_rows(data, prompt_col, id_col)  # bad rows fail before the model loads
        main = quiet_unless_main()  # joins the process group first: under a launcher each process picks its GPU
        loaded = load_model(model, dtype=dtype, device=device, log=_log)
        if system is None and chat_template:
            system = loaded.trained_system_prompt
        summary = generate_prompt_file(
            loaded.model,
            loaded.tokenizer,
            rows,
            out,
            settings,
            model_name=model,
            system=system,
            chat=chat_template,
            num_return_sequences=num_return_sequences,
            seed=seed,
            batch_size=batch_size,
            log=_log,
            decoding=decoding,
        )
    except MedtuneError as exc:
        _fail(exc)
    if not main:
        return
    _log(
        f"{summary.prompts} prompts: {summary.generated} answered now, {summary.skipped} skipped (already in {out}); "
        f"{summary.new_tokens} new tokens, {summary.new_tokens_per_s:.1f} tokens/s. Wrote {out}"
    )


app.command("judge")(judge)
app.command("serve")(serve)
app.add_typer(feedback_app, name="feedback")
app.add_typer(data_app, name="data")


def main() -> None:  # pragma: no cover - entry point for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
