"""Benchmark ``dtype: auto`` (bfloat16 on hardware that runs it natively) against ``float32``.

On the translate-en-es setup (embedded gemma-3-270m, the recipe's LoRA settings, batch 8), each part
runs in its own process, one after the other in the same sitting:
  train     - medtune's training loop for N steps: target tokens/s and training loss
  generate  - few-shot greedy translation of the test split (as the base model is scored): sentences/s, chrF++
  general   - the same on the first --n sentences of a larger file (--general-file), when given

The chrF++ difference (auto minus float32) is tested by paired bootstrap over sentences
(medtune.eval.significance); the table shows the auto/float32 ratios and the loss difference in %.

Usage: python benchmarks/bench_dtype.py [--steps 12] [--sentences 0 (= the whole test split)] [--compare-autocast]
         [--general-file /work/shared/data/translation/tico19_en_es_general_health.jsonl --n 300]
Quick check: python benchmarks/bench_dtype.py --steps 2 --sentences 8 --n 8 --general-file FILE
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DTYPES = ("auto", "float32")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n_train: int):
    """(the first ``n_train`` training pairs, the test pairs) of the bundled corpus, split as translate-en-es does."""
    from medtune.data.parallel import load_pairs
    from medtune.data.split import split_pairs

    pairs = load_pairs("demo:medical_en_es.jsonl", doc_col="doc_id")
    train, _, test = split_pairs(pairs, 0.12, 0.04, 42)
    return train[:n_train], test


def part_train(dtype: str, steps: int, batch_size: int, checkpointing: str = "true") -> dict:
    """The bundled translate-en-es recipe's training setup in ``dtype`` for ``steps`` steps.

    ``dtype="autocast"``: float32 weights trained under bf16 ``torch.autocast`` (the alternative to
    medtune's bf16 base + float32 LoRA; --compare-autocast).
    """
    import torch

    from medtune.recipes.loader import load_recipe
    from medtune.train.batching import encode_translation_pairs
    from medtune.train.loop import train_loop
    from medtune.train.setup import loop_config, prepare_trainable_model

    recipe = load_recipe(
        "translate-en-es",
        [
            f"train.dtype={'float32' if dtype == 'autocast' else dtype}",
            f"train.max_steps={steps}",
            f"train.batch_size={batch_size}",
            "train.eval_every=1000000",
            "train.save_every=1000000",
            f"train.gradient_checkpointing={checkpointing}",
        ],
    )
    train, _ = _data(steps * batch_size)
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    if dtype == "autocast":
        trainable.autocast_dtype = trainable.compute_dtype = torch.bfloat16
    examples = encode_translation_pairs(trainable.loaded.tokenizer, train, seq2seq=False, max_length=256)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_loop(
            trainable.model,
            examples,
            [],
            loop_config(recipe, trainable.autocast_dtype),
            trainable.loaded.tokenizer.pad_token_id,
            False,
            Path(tmp),
            log=lambda *_: None,
        )
        wall = time.perf_counter() - started
    return {
        **trainable.precision_info(),
        "gradient_checkpointing": recipe.train.gradient_checkpointing,
        "steps": result.steps,
        "target_tokens": result.target_tokens,
        "seconds": wall,
        "target_tokens_per_s": result.target_tokens / wall,
        "mean_loss": result.train_loss,  # token-weighted mean over all steps (same batches for both dtypes)
        "final_loss": result.loss_history[-1][1],
        "peak_mb": _peak_mb(),
    }


def _pairs(source: str, n: int):
    """The recipe's test split, or the first ``n`` valid pairs of a larger file; n = 0 keeps all."""
    if source == "test":
        _, pairs = _data(0)
    else:
        from medtune.data.parallel import load_pairs
        from medtune.data.validate import validate_pairs

        pairs, _ = validate_pairs(load_pairs(source), "general")
    return pairs[:n] if n else pairs


def part_generate(dtype: str, source: str, n: int, batch_size: int) -> dict:
    """Few-shot greedy translation, as the base model is scored in a translate-en-es run."""
    from medtune.eval.translation import evaluate_translation, pick_examples
    from medtune.models.loading import load_model

    pairs = _pairs(source, n)
    train, _ = _data(10**9)
    loaded = load_model("gemma-3-270m", dtype=dtype, log=lambda *_: None)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = evaluate_translation(
            loaded, pairs, Path(tmp), examples=pick_examples(train, 3, 42), batch_size=batch_size, label=None
        )
        rows = [json.loads(line) for line in (Path(tmp) / "outputs.jsonl").read_text(encoding="utf-8").splitlines()]
    return {
        **loaded.runtime_info(),
        "sentences": metrics["n"],
        "seconds": metrics["generation_seconds"],
        "sentences_per_s": metrics["sentences_per_s"],
        "chrf": metrics["chrf"],
        "outputs": [r["output"] for r in rows],
        "references": [r["reference"] for r in rows],
        "peak_mb": _peak_mb(),
    }


def _run_part(
    args: argparse.Namespace, part: str, dtype: str, source: str = "test", checkpointing: str = "true"
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--checkpointing",
        checkpointing,
        "--part",
        part,
        "--dtype",
        dtype,
        "--source",
        source,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--gen-batch-size",
        str(args.gen_batch_size),
        "--sentences",
        str(args.sentences),
        "--n",
        str(args.n),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"part {part} ({dtype}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _chrf_delta(auto: dict, fp32: dict) -> str:
    """Paired bootstrap of chrF++ (auto minus float32), or a note when the significance module is missing."""
    try:
        from medtune.eval.significance import paired_translation_deltas
    except ImportError:
        return "(medtune.eval.significance not available: chrF++ only, no significance test)"
    delta = paired_translation_deltas(fp32["outputs"], auto["outputs"], auto["references"])["chrf"]
    verdict = "significant at 95%" if delta.significant else "not significant"
    return f"{delta.value:+.2f} [{delta.ci_low:+.2f}, {delta.ci_high:+.2f}], p={delta.p_value:.3f}, {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="training steps for each dtype")
    parser.add_argument("--batch-size", type=int, default=8, help="training sequences per step")
    parser.add_argument("--gen-batch-size", type=int, default=32, help="sentences per generation batch (recipe: 32)")
    parser.add_argument("--sentences", type=int, default=0, help="test sentences to translate (0 = the whole split)")
    parser.add_argument("--general-file", help="a larger pairs file (en/es) to also translate --n sentences of")
    parser.add_argument("--n", type=int, default=300, help="sentences of --general-file to translate")
    parser.add_argument(
        "--compare-autocast",
        action="store_true",
        help="also train float32 weights under bf16 torch.autocast (the mixed-precision alternative medtune measured)",
    )
    parser.add_argument("--part", choices=["train", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=[*DTYPES, "autocast"], help=argparse.SUPPRESS)
    parser.add_argument("--source", default="test", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", default="true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "train":
        print(json.dumps(part_train(args.dtype, args.steps, args.batch_size, args.checkpointing)))
        return
    if args.part == "generate":
        n = args.sentences if args.source == "test" else args.n
        print(json.dumps(part_generate(args.dtype, args.source, n, args.gen_batch_size)))
        return

    train = {d: _run_part(args, "train", d) for d in (*DTYPES, *(["autocast"] if args.compare_autocast else []))}
    # bf16 without activation checkpointing: the speed the recipe gives up to stay under 4 GB.
    train["auto_unchecked"] = _run_part(args, "train", "auto", checkpointing="false")
    sets = {"test split": "test"} | (
        {f"{args.n} of {Path(args.general_file).name}": args.general_file} if args.general_file else {}
    )
    generation = {label: {d: _run_part(args, "generate", d, source) for d in DTYPES} for label, source in sets.items()}

    auto, fp32 = train["auto"], train["float32"]
    print(f"auto = {auto['dtype']} on {auto['device']} ({auto['device_name']}); {auto['mixed_precision']}")
    unchecked = train["auto_unchecked"]
    rows = [
        ("training target tokens/s", auto["target_tokens_per_s"], fp32["target_tokens_per_s"], "ratio"),
        (
            "training tokens/s, bf16 without checkpointing",
            unchecked["target_tokens_per_s"],
            fp32["target_tokens_per_s"],
            "ratio",
        ),
        ("training peak MB, bf16 without checkpointing", unchecked["peak_mb"], fp32["peak_mb"], "ratio"),
        ("training loss (mean of all steps)", auto["mean_loss"], fp32["mean_loss"], "loss"),
        ("training loss (last step)", auto["final_loss"], fp32["final_loss"], "loss"),
        ("training peak MB", auto["peak_mb"], fp32["peak_mb"], "ratio"),
    ]
    if "autocast" in train:
        c = train["autocast"]
        rows.insert(
            1,
            (
                "training tokens/s, fp32 weights + bf16 autocast",
                c["target_tokens_per_s"],
                fp32["target_tokens_per_s"],
                "ratio",
            ),
        )
        rows.insert(3, ("training loss, fp32 weights + bf16 autocast", c["mean_loss"], fp32["mean_loss"], "loss"))
    for label, by_dtype in generation.items():
        a, f = by_dtype["auto"], by_dtype["float32"]
        rows.append(
            (
                f"generation sentences/s, {label} (n={a['sentences']})",
                a["sentences_per_s"],
                f["sentences_per_s"],
                "ratio",
            )
        )
        rows.append((f"chrF++, {label}", a["chrf"], f["chrf"], "chrf"))
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'auto':>10}  {'float32':>10}  auto vs float32")
    for name, a, f, kind in rows:
        if kind == "ratio":
            compare = f"{a / f:.2f}x"
        elif kind == "loss":
            compare = f"{100 * (a - f) / f:+.2f}%"
        else:
            compare = _chrf_delta(*(generation[name.split(", ", 1)[1]][d] for d in DTYPES))
        print(f"{name:<{width}}  {a:>10.3f}  {f:>10.3f}  {compare}")
    for by_dtype in generation.values():
        for part in by_dtype.values():
            part.pop("outputs"), part.pop("references")
    print(json.dumps({"train": train, "generation": generation}, indent=2))


if __name__ == "__main__":
    main()
