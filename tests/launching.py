"""Running commands in several CPU processes under ``accelerate launch``, as the multi-process tests do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CPU_2PROC = Path(__file__).parents[1] / "configs" / "accelerate" / "cpu-2proc.yaml"
# set by a launcher: a process started without one must not think it belongs to a process group
GROUP_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_FSDP")


def child_env() -> dict[str, str]:
    """This environment for a child process: one thread per process (2 processes on 2 cores), the test's
    import path, a wide terminal for tables, and no process-group variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    for variable in GROUP_VARIABLES:
        env.pop(variable, None)
    return env


def launch_command(config: Path = CPU_2PROC, module: bool = False) -> list[str]:
    """``accelerate launch --config_file CONFIG [-m]``, to be followed by a script (or, with ``module``, a module)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    return [*command, "-m"] if module else command


def run_child(command: list[str], timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in :func:`child_env`, output captured; the caller checks the return code."""
    return subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_ok(command: list[str], timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """:func:`run_child`, asserting it exited 0 (the failure shows the end of its output)."""
    done = run_child(command, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
