"""The benchmark suite runner, end to end on a fake workload package: each variant in a real process,
ratios, targets, a failing variant, a missing workload, the table and the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.workloads.common import RESULT_FIELDS

REPO = Path(__file__).resolve().parents[2]

# mine: 1000 tokens in 2 s = 500 tok/s, 100 MB, loss 1.01; slow: 1000 tokens in 5 s = 200 tok/s, 200 MB, loss 1.00
FAKE_WORKLOAD = """
import os

from benchmarks.workloads.common import Target, workload_main

VARIANTS = ("mine", "slow", "broken")
BASELINES = ("slow", "broken")
TARGETS = (
    Target("speed", "slow", 2.0),
    Target("speed", "slow", 3.0),
    Target("memory", "slow", 0.5),
    Target("loss", "slow", 0.02),
    Target("speed", "broken", 1.0),
)
FIGURES = {"mine": (2.0, 100.0, 1.01), "slow": (5.0, 200.0, 1.0)}


def run_variant(variant, quick):
    if variant == "broken":
        raise RuntimeError("out of fake memory")
    wall, peak, loss = FIGURES[variant]
    return {
        "steps": 3, "target_tokens": 1000, "wall_s": wall, "tokens_per_s": 1000 / wall, "peak_mem_mb": peak,
        "final_loss": loss, "losses": [2.0, 1.5, loss], "extra": {"quick": quick, "pid": os.getpid()},
    }


if __name__ == "__main__":
    workload_main("fast", VARIANTS, run_variant)
"""


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    root = tmp_path_factory.mktemp("fakebench-root")
    package = root / "fakebench" / "workloads"
    package.mkdir(parents=True)
    (root / "fakebench" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "fast.py").write_text(textwrap.dedent(FAKE_WORKLOAD))
    out = root / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "benchmarks.run", "--package", "fakebench.workloads", "--only", "fast,absent"]
    done = subprocess.run([*cmd, "--quick", "--json", str(out)], capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def test_each_variant_runs_in_its_own_process_with_the_quick_flag(suite_run):
    _, report = suite_run
    results = report["workloads"][0]["results"]
    ok = [r for r in results if "failed" not in r]
    assert [r["variant"] for r in ok] == ["mine", "slow"]
    assert all(r["extra"]["quick"] is True for r in ok)
    assert len({r["extra"]["pid"] for r in ok} | {os.getpid()}) == 3
    assert all(list(r) == list(RESULT_FIELDS) for r in ok)
    assert ok[0]["workload"] == "fast" and ok[0]["device"].startswith(("cpu: ", "cuda: "))


def test_ratios_are_medtune_over_each_baseline_that_ran(suite_run):
    _, report = suite_run
    ratios = report["workloads"][0]["ratios"]
    assert list(ratios) == ["slow"]  # the failed baseline gives no ratio
    assert ratios["slow"]["tokens_per_s"] == pytest.approx(500 / 200)
    assert ratios["slow"]["peak_mem_mb"] == pytest.approx(100 / 200)
    assert ratios["slow"]["final_loss_rel_diff"] == pytest.approx(1.01 / 1.0 - 1)


def test_targets_say_met_not_met_or_not_measured(suite_run):
    _, report = suite_run
    checked = [(t["target"], t["met"]) for t in report["targets"]]
    assert checked == [
        ("tokens/s >= 2x slow", True),
        ("tokens/s >= 3x slow", False),
        ("peak memory <= 0.5x slow", True),
        ("final loss within 2% of slow", True),
        ("tokens/s >= 1x broken", None),
    ]


def test_a_failing_variant_and_a_missing_workload_do_not_stop_the_suite(suite_run):
    _, report = suite_run
    fast, absent = report["workloads"]
    assert fast["results"][2] == {"variant": "broken", "failed": "RuntimeError: out of fake memory"}
    assert absent == {
        "workload": "absent",
        "status": "not available",
        "variants": [],
        "baselines": [],
        "results": [],
        "ratios": {},
    }


def test_the_printed_table(suite_run):
    done, report = suite_run
    table = report["table"]
    assert table in done.stdout
    assert "fast / mine: 500.0 tokens/s, peak 100 MB (" in done.stdout  # progress lines come first
    assert "fast / broken: failed: RuntimeError: out of fake memory (" in done.stdout
    lines = table.splitlines()
    assert lines[0].split() == ["workload", "variant", "tokens/s", "wall", "s", "peak", "MB", "final", "loss"] + [
        "medtune",
        "/",
        "baseline",
    ]
    rows = {line.split()[1]: line for line in lines[2:5]}
    assert rows["mine"].split()[:6] == ["fast", "mine", "500.0", "2.0", "100", "1.0100"]
    assert rows["mine"].endswith("vs slow: 2.50x tok/s, 0.50x mem, loss +1.0%")
    assert rows["slow"].split() == ["fast", "slow", "200.0", "5.0", "200", "1.0000"]
    assert rows["broken"].split() == ["fast", "broken", "failed:", "RuntimeError:", "out", "of", "fake", "memory"]
    assert lines[5].split() == ["absent", "not", "available"]
    assert "  [NOT MET] fast: tokens/s >= 3x slow (measured 2.50x)" in lines
    assert "  [met] fast: final loss within 2% of slow (measured +1.00%)" in lines
    assert "  [not measured] fast: tokens/s >= 1x broken" in lines


def test_machine_facts_name_the_cpu_and_library_versions(suite_run):
    _, report = suite_run
    machine = report["machine"]
    assert machine["cores"] == os.cpu_count() and machine["cpu"]
    from importlib.metadata import version

    assert machine["torch"] == version("torch") and machine["trl"] == version("trl")
    assert report["quick"] is True
