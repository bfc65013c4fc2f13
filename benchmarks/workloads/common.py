"""What every benchmark workload shares: the result record, peak memory, the device, target-token counts.

A workload module (``benchmarks/workloads/<name>.py``) declares ``VARIANTS`` (medtune's first),
``BASELINES`` (the variants medtune's figures are divided by), optionally ``TARGETS`` (:class:`Target`),
and a ``main()`` that runs one variant and writes one result with :func:`write_result`.
``python -m benchmarks.run`` runs each variant in its own process and compares them.

Heavy libraries (torch, transformers) are imported inside the functions that need them, so the
suite runner can read a workload's declarations without loading them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

RESULT_FIELDS = (
    "workload",
    "variant",
    "device",
    "steps",
    "target_tokens",
    "wall_s",
    "tokens_per_s",
    "peak_mem_mb",
    "final_loss",
    "losses",
    "extra",
)


@dataclass(frozen=True)
class Target:
    """A goal medtune's variant is held to against one baseline, reported met / not met by the suite.

    ``kind``: "speed" (tokens/s ratio >= limit), "memory" (peak memory ratio <= limit) or
    "loss" (|final loss / baseline's - 1| <= limit).
    """

    kind: Literal["speed", "memory", "loss"]
    baseline: str
    limit: float

    def describe(self) -> str:
        if self.kind == "speed":
            return f"tokens/s >= {self.limit:g}x {self.baseline}"
        if self.kind == "memory":
            return f"peak memory <= {self.limit:g}x {self.baseline}"
        return f"final loss within {100 * self.limit:g}% of {self.baseline}"


def peak_mem_mb() -> float:
    """Peak memory of this process in MB: CUDA's max allocated when CUDA was used, else the max RSS."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def device_name() -> str:
    """``"cpu: N cores"`` (the cores this process may use) or the CUDA device's name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {len(os.sched_getaffinity(0))} cores"


def embedded_model_dir() -> Path:
    """The cached Hugging Face folder of the embedded model (built on first use, about a minute)."""
    from medtune.models.gguf import ensure_embedded_model

    return ensure_embedded_model(log=lambda *_: None)


def shared_data(relative: str) -> Path:
    """A file of the shared datasets (``shared/data/<relative>`` beside the repository or one of its parent
    folders, or under ``$MEDTUNE_SHARED_DATA``), read in place.

    Raises:
        FileNotFoundError: naming the places looked in and the variable that points elsewhere.
    """
    roots = [Path(os.environ["MEDTUNE_SHARED_DATA"])] if os.environ.get("MEDTUNE_SHARED_DATA") else []
    roots += [folder / "shared" / "data" for folder in Path(__file__).resolve().parents]
    for root in roots:
        if (root / relative).is_file():
            return root / relative
    raise FileNotFoundError(
        f"{relative} not found under {', '.join(str(r) for r in roots[:3])}, ...; "
        "set MEDTUNE_SHARED_DATA to the folder holding the shared datasets"
    )


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON object of a .jsonl file (blank lines skipped)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def completion_tokens(tokenizer, completions: Sequence[str]) -> int:
    """Target tokens of ``completions``, counted the same way for every variant: each completion's own
    tokens (no special tokens added) plus one end-of-sequence token."""
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 for text in completions)


def completion_logps(model, rows: Sequence[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-probability of each row's completion given its prompt, rows as ``(prompt_ids, completion_ids)``.

    One row at a time with ``logits_to_keep`` (full-vocabulary logits of a padded batch took GBs); the
    model is put in eval mode for the pass and left as it was found.
    """
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logps = []
    with torch.no_grad(), foldable_head(model):
        for prompt, completion in rows:
            ids = torch.tensor([prompt + completion], device=device)
            # the last len(completion) + 1 positions; all but the last predict the completion's tokens
            logits = model(input_ids=ids, logits_to_keep=len(completion) + 1).logits[0, :-1].float()
            targets = torch.tensor(completion, device=device)
            logps.append(float(torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).sum()))
    model.train(was_training)
    return logps


@contextmanager
def foldable_head(model) -> Iterator[None]:
    """The output layer's weight flagged ``requires_grad`` for a no-grad pass, then as it was.

    torch's matmul folds ``(1, k, d) @ head.T`` into one matrix product only when the weight requires
    grad; a frozen head (PEFT freezes it) is broadcast instead, about 1 s per held-out row for the
    262k-token head (see medtune.models.loading._keep_head_foldable). Under ``no_grad`` the flag records nothing.
    """
    weight = getattr(model.get_output_embeddings(), "weight", None)
    was = None if weight is None else weight.requires_grad
    if weight is not None:
        weight.requires_grad_(True)
    try:
        yield
    finally:
        if weight is not None:
            weight.requires_grad_(was)


def completion_loss(model, rows: Sequence[tuple[list[int], list[int]]]) -> float:
    """Mean cross-entropy per completion token of held-out ``(prompt_ids, completion_ids)`` rows.

    The same plain forward pass scores every variant's trained model (whatever its trainer), so final
    losses compare the models, not how each trainer averages its logged loss over different batches.
    """
    return -sum(completion_logps(model, rows)) / sum(len(completion) for _, completion in rows)


def dpo_loss(model, pairs: Sequence[tuple[list[int], list[int], list[int]]], beta: float) -> float:
    """Mean DPO (sigmoid) loss of held-out ``(prompt_ids, chosen_ids, rejected_ids)`` pairs for a PEFT model,
    the reference being the same model with its adapter disabled."""
    import math

    rows = [(p, side) for p, chosen, rejected in pairs for side in (chosen, rejected)]
    policy = completion_logps(model, rows)
    with model.disable_adapter():
        reference = completion_logps(model, rows)
    losses = []
    for i in range(0, len(rows), 2):
        margin = beta * ((policy[i] - reference[i]) - (policy[i + 1] - reference[i + 1]))
        losses.append(max(-margin, 0.0) + math.log1p(math.exp(-abs(margin))))  # -log(sigmoid(margin)), stable
    return sum(losses) / len(losses)


def write_result(path: str | Path, **fields: Any) -> dict:
    """Write one variant's result as a JSON object with exactly :data:`RESULT_FIELDS`; returns it.

    Raises:
        ValueError: a field is missing or unknown (a bug in the workload, not user input).
    """
    missing = [name for name in RESULT_FIELDS if name not in fields]
    unknown = [name for name in fields if name not in RESULT_FIELDS]
    if missing or unknown:
        raise ValueError(f"result fields: missing {missing}, unknown {unknown}")
    record = {name: fields[name] for name in RESULT_FIELDS}
    Path(path).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def workload_main(workload: str, variants: Sequence[str], run_variant: Callable[[str, bool], dict]) -> None:
    """The command line every workload shares: ``--variant V [--quick] --out FILE.json``.

    ``run_variant(variant, quick)`` returns the result fields except ``workload``, ``variant`` and ``device``.
    """
    parser = argparse.ArgumentParser(description=f"Benchmark workload {workload}: one variant per process.")
    parser.add_argument("--variant", required=True, choices=list(variants), help="which implementation to run")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rows (the CI-sized run)")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result (JSON)")
    args = parser.parse_args()
    fields = run_variant(args.variant, args.quick)
    write_result(args.out, workload=workload, variant=args.variant, device=device_name(), **fields)
