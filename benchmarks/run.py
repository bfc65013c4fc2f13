"""Run the benchmark suite: the same work through medtune and through TRL / plain transformers, side by side.

    python -m benchmarks.run [--quick] [--only translation_sft,chat_sft,...] [--json PATH]

Every variant of every workload runs in its own process (``python -m benchmarks.workloads.<name>
--variant V [--quick] --out FILE.json``) so peak memory is its own. The suite then prints one table
(tokens/s, wall time, peak memory, final loss, and medtune's ratios against each baseline), one line
per target (met / not met, with the numbers), and writes everything as JSON. A variant that fails is
shown as "failed: <reason>" and the suite goes on; a workload whose module does not exist yet is
listed as "not available".
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.workloads.common import Target

WORKLOADS = ("translation_sft", "chat_sft", "dpo", "generation", "ddp")
PACKAGE = "benchmarks.workloads"
DEFAULT_JSON = "benchmark-results.json"


@dataclass
class Workload:
    """A workload module's declarations, or why it cannot run."""

    name: str
    variants: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    targets: tuple[Target, ...] = ()
    problem: str | None = None  # "not available" or "failed: <reason>"
    results: list[dict] = field(default_factory=list)


def load_workload(name: str, package: str = PACKAGE) -> Workload:
    """Read ``VARIANTS``, ``BASELINES`` and ``TARGETS`` of ``<package>.<name>`` without running it."""
    module_name = f"{package}.{name}"
    try:
        missing = importlib.util.find_spec(module_name) is None
    except ModuleNotFoundError:
        missing = True
    if missing:
        return Workload(name, problem="not available")
    try:
        module = importlib.import_module(module_name)
        variants = tuple(module.VARIANTS)
        baselines = tuple(module.BASELINES)
        targets = tuple(getattr(module, "TARGETS", ()))
    except Exception as error:  # a broken workload must not stop the others
        return Workload(name, problem=f"failed: {type(error).__name__}: {error}")
    return Workload(name, variants, baselines, targets)


def _one_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _subprocess_env(package: str) -> dict[str, str]:
    """The environment with the folders holding ``package`` and ``benchmarks`` first on PYTHONPATH, so the
    workload's ``-m`` finds both from any working folder."""
    top = importlib.import_module(package.split(".")[0])
    roots = [str(Path(next(iter(top.__path__))).parent), str(Path(__file__).resolve().parents[1])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in (*roots, env.get("PYTHONPATH", "")) if p))
    return env


def run_variant(name: str, variant: str, quick: bool, package: str = PACKAGE, timeout: float | None = None) -> dict:
    """Run one variant in a fresh process; its result, or ``{"variant", "failed": <one line>}``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", f"{package}.{name}", "--variant", variant, "--out", str(out)]
        if quick:
            cmd.append("--quick")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_subprocess_env(package))
        except subprocess.TimeoutExpired:
            return {"variant": variant, "failed": f"timed out after {timeout:g} s"}
        if done.returncode != 0:
            return {"variant": variant, "failed": _one_line(done.stderr or done.stdout)}
        try:
            return json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return {"variant": variant, "failed": f"no readable result ({type(error).__name__}: {error})"}


def compare(workload: Workload) -> dict[str, dict[str, float | None]]:
    """medtune's figures divided by each baseline's: tokens/s and peak memory ratios, final loss relative
    difference (medtune / baseline - 1). Baselines that failed (or medtune failing) give no entry."""
    by_variant = {r["variant"]: r for r in workload.results if "failed" not in r}
    mine = by_variant.get(workload.variants[0]) if workload.variants else None
    ratios: dict[str, dict[str, float | None]] = {}
    if mine is None:
        return ratios
    for baseline in workload.baselines:
        other = by_variant.get(baseline)
        if other is None:
            continue
        ratios[baseline] = {
            "tokens_per_s": _ratio(mine["tokens_per_s"], other["tokens_per_s"]),
            "peak_mem_mb": _ratio(mine["peak_mem_mb"], other["peak_mem_mb"]),
            "final_loss_rel_diff": (
                None if mine["final_loss"] is None else _ratio(mine["final_loss"], other["final_loss"], minus_one=True)
            ),
        }
    return ratios


def _ratio(a: float | None, b: float | None, minus_one: bool = False) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b - 1 if minus_one else a / b


def check_targets(workload: Workload, ratios: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    """Each target of the workload with the measured value and whether it is met (None: not measured)."""
    checked = []
    for target in workload.targets:
        figures = ratios.get(target.baseline, {})
        key = {"speed": "tokens_per_s", "memory": "peak_mem_mb", "loss": "final_loss_rel_diff"}[target.kind]
        value = figures.get(key)
        if value is None:
            met = None
        elif target.kind == "speed":
            met = value >= target.limit
        elif target.kind == "memory":
            met = value <= target.limit
        else:
            met = abs(value) <= target.limit
        checked.append({"workload": workload.name, "target": target.describe(), "value": value, "met": met})
    return checked


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, Python and library versions: what a reader needs to compare two result files."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: platform's answer stands
    facts: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "medtune"):
        try:
            facts[package] = version(package)
        except PackageNotFoundError:
            facts[package] = None
    return facts


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio_text(ratios: dict[str, dict[str, float | None]]) -> str:
    parts = []
    for baseline, r in ratios.items():
        loss = r["final_loss_rel_diff"]
        loss_text = "loss -" if loss is None else f"loss {100 * loss:+.1f}%"
        parts.append(
            f"vs {baseline}: {_fmt(r['tokens_per_s'], 2)}x tok/s, {_fmt(r['peak_mem_mb'], 2)}x mem, {loss_text}"
        )
    return "; ".join(parts)


def format_table(workloads: Sequence[Workload], ratios: dict[str, dict], targets: Sequence[dict]) -> str:
    """The suite's table (one row per variant; medtune's row carries its ratios) and one line per target."""
    header = ("workload", "variant", "tokens/s", "wall s", "peak MB", "final loss", "medtune / baseline")
    rows: list[tuple[str, ...]] = []
    for workload in workloads:
        if workload.problem is not None:
            rows.append((workload.name, workload.problem, "", "", "", "", ""))
            continue
        for result in workload.results:
            variant = result["variant"]
            if "failed" in result:
                rows.append((workload.name, variant, f"failed: {result['failed']}", "", "", "", ""))
                continue
            mine = variant == workload.variants[0]
            rows.append(
                (
                    workload.name,
                    variant,
                    _fmt(result["tokens_per_s"], 1),
                    _fmt(result["wall_s"], 1),
                    _fmt(result["peak_mem_mb"], 0),
                    _fmt(result["final_loss"], 4),
                    _ratio_text(ratios.get(workload.name, {})) if mine else "",
                )
            )
    widths = [max(len(row[i]) for row in [header, *rows] if not row[i].startswith("failed: ")) for i in range(6)]
    lines = []
    for row in [header, *rows]:
        if row[2].startswith("failed: "):  # the reason takes the remaining columns
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
            continue
        cells = [f"{row[0]:<{widths[0]}}", f"{row[1]:<{widths[1]}}"]
        cells += [f"{row[i]:>{widths[i]}}" for i in range(2, 6)]
        cells.append(row[6])
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    if targets:
        lines.append("")
        lines.append("targets:")
        for t in targets:
            status = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
            value = "" if t["value"] is None else f" (measured {_target_value(t)})"
            lines.append(f"  [{status}] {t['workload']}: {t['target']}{value}")
    return "\n".join(lines)


def _target_value(checked: dict) -> str:
    value = checked["value"]
    return f"{100 * value:+.2f}%" if "loss" in checked["target"] else f"{value:.2f}x"


def run_suite(
    names: Sequence[str],
    quick: bool,
    package: str = PACKAGE,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every variant of every named workload, in order; returns the report (see :func:`main`)."""
    workloads = []
    for name in names:
        workload = load_workload(name, package)
        workloads.append(workload)
        if workload.problem is not None:
            log(f"{name}: {workload.problem}")
            continue
        for variant in workload.variants:
            started = time.perf_counter()
            result = run_variant(name, variant, quick, package, timeout)
            workload.results.append(result)
            if "failed" in result:
                outcome = f"failed: {result['failed']}"
            else:  # the figures as they come, so a long suite shows progress
                outcome = f"{_fmt(result['tokens_per_s'], 1)} tokens/s, peak {_fmt(result['peak_mem_mb'], 0)} MB"
            log(f"{name} / {variant}: {outcome} ({time.perf_counter() - started:.0f} s)")
    ratios = {w.name: compare(w) for w in workloads}
    targets = [t for w in workloads for t in check_targets(w, ratios[w.name])]
    return {
        "quick": quick,
        "machine": machine_facts(),
        "workloads": [
            {
                "workload": w.name,
                "status": w.problem or "ran",
                "variants": list(w.variants),
                "baselines": list(w.baselines),
                "results": w.results,
                "ratios": ratios[w.name],
            }
            for w in workloads
        ],
        "targets": targets,
        "table": format_table(workloads, ratios, targets),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and rows: the whole suite in under 10 min")
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to run, in this order (default: {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--json", default=DEFAULT_JSON, type=Path, help=f"where to write all results (default: {DEFAULT_JSON})"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds one variant may run (default: no limit)")
    parser.add_argument("--package", default=PACKAGE, help=argparse.SUPPRESS)  # tests point it at fake workloads
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if not names:
        parser.error("--only names no workload")
    report = run_suite(names, args.quick, args.package, args.timeout, log=lambda line: print(line, flush=True))
    print()
    print(report["table"])
    args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
