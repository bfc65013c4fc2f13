"""Benchmark workload ``ddp``: 2 data-parallel processes (gloo, CPU) against 1 process with the doubled batch.

Both variants train the embedded model with LoRA in bfloat16 (the translate-en-es recipe's settings)
on the TICO-19 health pairs for the same steps and global batch: ``2-processes`` runs
``accelerate launch --config_file configs/accelerate/cpu-2proc.yaml`` with ``train.batch_size`` B and
one CPU thread per process, ``1-process`` trains here with 2B and every core. Reported: trained
(target) tokens/s over the training wall time (the slowest rank's), peak RSS (the largest rank's; the
sum over ranks in ``extra``), the per-step losses. Each variant also leaves its losses in the
system's temporary folder, so whichever runs second reports the largest per-step loss difference to
the other in ``extra`` (the runs should agree up to bfloat16 rounding; the float32 check is
``benchmarks/bench_ddp_equivalence.py``).

Usage: python -m benchmarks.workloads.ddp --variant 2-processes|1-process [--quick] --out FILE.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.workloads.common import Target, device_name, peak_mem_mb, shared_data, write_result

VARIANTS: tuple[str, ...] = ("2-processes", "1-process")
BASELINES: tuple[str, ...] = ("1-process",)
TARGETS: tuple[Target, ...] = (Target("loss", "1-process", 0.01),)  # same training, whatever the speed

REPO = Path(__file__).resolve().parents[2]
CPU_2PROC = REPO / "configs" / "accelerate" / "cpu-2proc.yaml"
PAIRS = "translation/tico19_en_es_general_health.jsonl"
PROCESSES = 2


def settings(quick: bool) -> dict:
    """Steps and the per-process batch B (the single process trains with 2B)."""
    return {"steps": 2, "batch_size": 4} if quick else {"steps": 20, "batch_size": 4}


def train(batch_size: int, steps: int, dtype: str = "bfloat16", model: str = "gemma-3-270m") -> dict:
    """Train with medtune's loop in this process (one rank of a launch, or alone); returns this rank's figures."""
    import torch

    from medtune.data.parallel import Pair
    from medtune.recipes.loader import load_recipe
    from medtune.train.batching import encode_translation_pairs
    from medtune.train.distributed import world
    from medtune.train.loop import train_loop
    from medtune.train.setup import loop_config, prepare_trainable_model

    rank, size = world()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // size))  # the cores shared out, not oversubscribed
    overrides = [
        f"model={model}",
        f"train.batch_size={batch_size}",
        f"train.dtype={dtype}",
        f"train.max_steps={steps}",
        "train.warmup_ratio=0.0",
        "train.eval_every=1000000",
        "train.save_every=1000000",
    ]
    recipe = load_recipe("translate-en-es", overrides)
    quiet = lambda *_: None  # noqa: E731
    trainable = prepare_trainable_model(recipe, log=quiet)
    tokenizer = trainable.loaded.tokenizer
    rows = [json.loads(line) for line in shared_data(PAIRS).open(encoding="utf-8") if line.strip()]
    needed = batch_size * size * steps  # exactly the examples the steps consume: one pass, no epoch wrap
    pairs = [Pair(row["en"], row["es"]) for row in rows[:needed]]
    examples = encode_translation_pairs(tokenizer, pairs, seq2seq=False, max_length=recipe.train.max_length)
    with tempfile.TemporaryDirectory() as checkpoints:
        started = time.perf_counter()
        result = train_loop(
            trainable.model,
            examples,
            [],
            loop_config(recipe, trainable.autocast_dtype),
            tokenizer.pad_token_id,
            False,
            Path(checkpoints),
            log=quiet,
        )
        wall = time.perf_counter() - started
    return {
        "rank": rank,
        "processes": size,
        "wall_s": wall,
        "steps": result.steps,
        "target_tokens": result.target_tokens,
        "losses": [loss for _, loss in result.loss_history],
        "peak_mem_mb": peak_mem_mb(),
    }


def launch_ranks(batch_size: int, steps: int, dtype: str, model: str, folder: Path) -> list[dict]:
    """Run :func:`train` under ``accelerate launch`` with :data:`PROCESSES` processes; every rank's figures."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), *sys.path])}
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(variable, None)
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC)),
        *("--num_processes", str(PROCESSES), "-m", "benchmarks.workloads.ddp"),
        *("--rank-of-launch", str(folder), "--batch-size", str(batch_size), "--steps", str(steps)),
        *("--dtype", dtype, "--model", model),
    ]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"accelerate launch failed ({done.returncode}): {done.stderr[-2000:]}")
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in range(PROCESSES)]


def run_variant(variant: str, quick: bool, dtype: str = "bfloat16", model: str = "gemma-3-270m") -> dict:
    """One variant's result fields (all but workload, variant, device)."""
    plan = settings(quick)
    if variant == "2-processes":
        with tempfile.TemporaryDirectory() as folder:
            ranks = launch_ranks(plan["batch_size"], plan["steps"], dtype, model, Path(folder))
    else:
        ranks = [train(PROCESSES * plan["batch_size"], plan["steps"], dtype, model)]
    main = ranks[0]
    wall = max(rank["wall_s"] for rank in ranks)
    losses = main["losses"]
    extra = {
        "processes": len(ranks),
        "threads_per_process": max(1, len(os.sched_getaffinity(0)) // len(ranks)),
        "batch_per_process": plan["batch_size"] if variant == "2-processes" else PROCESSES * plan["batch_size"],
        "peak_mem_mb_all_processes": sum(rank["peak_mem_mb"] for rank in ranks),
        "ranks_agree": all(rank["losses"] == losses for rank in ranks),
        **compare_with_other_variant(variant, quick, dtype, model, losses),
    }
    return {
        "steps": main["steps"],
        "target_tokens": main["target_tokens"],
        "wall_s": wall,
        "tokens_per_s": main["target_tokens"] / wall,
        "peak_mem_mb": max(rank["peak_mem_mb"] for rank in ranks),
        "final_loss": losses[-1] if losses else None,
        "losses": losses,
        "extra": extra,
    }


def compare_with_other_variant(variant: str, quick: bool, dtype: str, model: str, losses: list[float]) -> dict:
    """Leave this variant's losses in the temporary folder and, when the other variant's are there (same
    settings), the largest per-step absolute and relative loss difference between the two."""
    key = hashlib.sha256(json.dumps([settings(quick), dtype, model, str(REPO)]).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir())
    (folder / f"medtune-bench-ddp-{key}-{variant}.json").write_text(json.dumps(losses))
    other = next(v for v in VARIANTS if v != variant)
    other_file = folder / f"medtune-bench-ddp-{key}-{other}.json"
    if not other_file.is_file():
        return {"max_step_loss_diff": None, "max_step_loss_rel_diff": None}
    theirs = json.loads(other_file.read_text())
    if len(theirs) != len(losses):
        return {"max_step_loss_diff": None, "max_step_loss_rel_diff": None}
    return {
        "max_step_loss_diff": max(abs(a - b) for a, b in zip(losses, theirs, strict=True)),
        "max_step_loss_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(losses, theirs, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark workload ddp: one variant per process.")
    parser.add_argument("--variant", choices=VARIANTS, help="which variant to run")
    parser.add_argument("--quick", action="store_true", help="fewer steps (the CI-sized run)")
    parser.add_argument("--out", type=Path, help="where to write the result (JSON)")
    parser.add_argument("--rank-of-launch", type=Path, help=argparse.SUPPRESS)  # internal: one rank of a launch
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bfloat16", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="gemma-3-270m", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_of_launch is not None:
        figures = train(args.batch_size, args.steps, args.dtype, args.model)
        (args.rank_of_launch / f"rank{figures['rank']}.json").write_text(json.dumps(figures))
        return
    if args.variant is None or args.out is None:
        parser.error("--variant and --out are required")
    fields = run_variant(args.variant, args.quick)
    write_result(args.out, workload="ddp", variant=args.variant, device=device_name(), **fields)


if __name__ == "__main__":
    main()
