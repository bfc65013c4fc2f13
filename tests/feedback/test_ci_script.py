""".ci/run: installs PostgreSQL and Chromium with apt only when missing, then runs exactly the README's test command."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_last_line_is_the_readmes_test_command():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    readme_command = next(line for line in lines if line.startswith("pip install") and line.endswith("pytest -q"))
    assert SCRIPT.rstrip().splitlines()[-1] == readme_command


def _run_install_part(tmp_path: Path, with_chromium: bool) -> tuple[list[str], str]:
    """The script up to the test command, with apt-get replaced by a recorder (apt cannot run in a test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("ls", "id", "env", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    log = tmp_path / "apt.log"
    recorder = bin_dir / "apt-get"
    recorder.write_text(f'#!/bin/bash\necho "$DEBIAN_FRONTEND $*" >> {log}\n')
    recorder.chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/bash\n"$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    if with_chromium:
        (bin_dir / "chromium").write_text("#!/bin/bash\n")
        (bin_dir / "chromium").chmod(0o755)
    install_part = SCRIPT[: SCRIPT.index("pip install torch")] + 'echo "CI=$CI"\n'
    result = subprocess.run(
        ["/bin/bash", "-c", install_part],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return (log.read_text().splitlines() if log.exists() else []), result.stdout


def test_missing_packages_are_installed_with_apt_and_present_ones_are_not(tmp_path):
    postgres_present = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    missing = ([] if postgres_present else ["postgresql"]) + ["chromium"]
    calls, output = _run_install_part(tmp_path / "missing", with_chromium=False)
    assert calls == [" update -q", f"noninteractive install -y -q --no-install-recommends {' '.join(missing)}"]
    assert "CI=true" in output
    if postgres_present:  # everything there: apt is not touched (a machine that has them is not slowed)
        assert _run_install_part(tmp_path / "present", with_chromium=True)[0] == []
