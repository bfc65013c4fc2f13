"""Every workload module declares its variants, baselines and targets consistently, and the suite runs it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from benchmarks.run import WORKLOADS
from benchmarks.workloads.common import Target

FOLDER = Path(__file__).resolve().parents[2] / "benchmarks" / "workloads"
MODULES = sorted(p.stem for p in FOLDER.glob("*.py") if p.stem != "common" and not p.stem.startswith("_"))


def test_every_workload_module_is_in_the_suite():
    assert MODULES and set(MODULES) <= set(WORKLOADS)


@pytest.mark.parametrize("name", MODULES)
def test_declarations(name):
    module = importlib.import_module(f"benchmarks.workloads.{name}")
    variants, baselines = module.VARIANTS, module.BASELINES
    assert isinstance(variants, tuple) and isinstance(baselines, tuple)
    assert len(set(variants)) == len(variants) >= 2 and all(isinstance(v, str) and v for v in variants)
    assert baselines and set(baselines) <= set(variants[1:])  # medtune's own variant comes first
    for target in getattr(module, "TARGETS", ()):
        assert isinstance(target, Target) and target.baseline in baselines and target.limit > 0
    assert callable(module.main)
