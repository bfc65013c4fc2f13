"""pyproject.toml declares what the code imports, in the right place, with bounds the tested versions meet."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS = PROJECT["optional-dependencies"]
# Extras that add a feature to the package (not tooling): code under src/ may import what they declare.
FEATURE_EXTRAS = [name for name in EXTRAS if name not in ("dev", "bench")]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*groups: str) -> set[str]:
    """Distribution names required by the core dependencies plus the named extras."""
    requirements = PROJECT["dependencies"] + [r for group in groups for r in EXTRAS[group]]
    return {_normalized(Requirement(r).name) for r in requirements}


def _third_party_imports(root: Path) -> dict[str, str]:
    """Top-level modules imported anywhere under ``root`` (also inside functions) -> one file importing it."""
    # the folder itself is local too: benchmarks import benchmarks.workloads
    local = (
        {p.stem for p in root.rglob("*.py")} | {p.name for p in root.rglob("*") if p.is_dir()} | {"medtune", root.name}
    )
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once


def _distributions(module: str) -> set[str]:
    # An uninstalled optional module (e.g. bitsandbytes) is assumed to share its distribution's name.
    return {_normalized(d) for d in _module_distributions().get(module, [module])}


@pytest.mark.parametrize(
    ("folder", "groups"),
    [("src", FEATURE_EXTRAS), ("tests", ["dev"]), ("benchmarks", ["bench"])],
)
def test_every_imported_module_is_declared(folder, groups):
    declared = _declared(*groups)
    imports = _third_party_imports(ROOT / folder)
    assert imports, folder
    missing = {
        module: where for module, where in imports.items() if not _distributions(module) & declared
    }  # e.g. {"rich": "src/medtune/cli.py"}
    assert missing == {}, f"imported under {folder}/ but not declared in pyproject.toml ({' + '.join(groups)})"


def test_benchmark_only_tools_stay_out_of_the_core_dependencies():
    core = _declared()
    assert "trl" not in core and "trl" in _declared("bench") and "trl" in _declared("dev")
    assert "trl" not in _third_party_imports(ROOT / "src")


def test_bounds_hold_the_installed_versions_and_stop_at_the_next_major():
    requirements = [Requirement(r) for r in PROJECT["dependencies"] + [r for g in EXTRAS.values() for r in g]]
    for requirement in requirements:
        pinned = any(spec.operator == "==" for spec in requirement.specifier)  # a pinned model package
        assert pinned or any(spec.operator == "<" for spec in requirement.specifier), (
            f"{requirement} has no upper bound"
        )
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            continue  # an optional extra not installed here (qlora, gptq)
        assert requirement.specifier.contains(installed, prereleases=True), (str(requirement), installed)
    by_name = {_normalized(r.name): r for r in requirements}
    assert str(by_name["torch"].specifier) == "<3,>=2.4"
    ruff = by_name["ruff"].specifier  # one minor release: lint rules do not change under CI
    major, minor = map(int, version("ruff").split(".")[:2])
    assert ruff.contains(version("ruff")) and not ruff.contains(f"{major}.{minor + 1}.0")
