"""Checks shared by the CLI tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from medtune.cli import app


def run_cli(args: list[str], input: str | None = None, home: Path | None = None):
    """Run ``medtune`` in-process (``$MEDTUNE_HOME`` in ``home`` when given, a wide terminal for tables).

    Asserts no traceback reached the user, whatever the exit code.
    """
    env = {"COLUMNS": "200"} | ({"MEDTUNE_HOME": str(home)} if home is not None else {})
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)
    assert "Traceback" not in result.output
    return result


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2 with one 'error:' paragraph naming what is wrong, and no traceback.

    Fragments are matched with whitespace collapsed, since the console wraps long messages.
    """
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped exception
    assert "error:" in result.output
    for fragment in fragments:
        assert fragment in " ".join(result.output.split()), (fragment, result.output)


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path: equal before and after = nothing lost."""
    root = Path(folder)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_option_refused(result, option: str, bound: str) -> None:
    """Exit code 2 from the option's own range check (typer's ``min=``), naming the option and its bound."""
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for '{option}'" in text and bound in text, text
