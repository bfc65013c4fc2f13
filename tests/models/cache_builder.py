"""Worker for tests/models/test_cache_lock.py: builds a stand-in model folder with ``build_once``.

``python cache_builder.py TARGET LOG`` builds TARGET (a config and a weights file, written slowly so
that a second process starting at the same time finds the build under way) and appends a line to
LOG each time its build function runs; it prints the folder ``build_once`` returned.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from medtune.models.gguf import _has_weights, build_once


def main(target: str, log_file: str) -> None:
    def build(out: Path) -> None:
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\n")
        out.mkdir()
        (out / "config.json").write_text(json.dumps({"model_type": "stand-in"}), encoding="utf-8")
        time.sleep(1.0)  # widen the window in which an unlocked second build would start
        (out / "model.safetensors").write_bytes(b"weights of " + str(os.getpid()).encode())

    print(build_once(Path(target), build, _has_weights, log=lambda _: None))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
