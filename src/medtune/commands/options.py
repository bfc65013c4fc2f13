"""Options several commands share, defined once so their help reads the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where the model runs: auto (a CUDA GPU, then Apple MPS, then the CPU), cpu, cuda, cuda:N (GPU N) or mps.",
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="Precision of the weights and computation: auto (bfloat16 where the hardware runs it natively: CUDA "
        "GPUs with bf16, CPUs with AMX or AVX512-BF16; else float32), float32, bfloat16 or float16 (GPUs).",
    ),
]
CacheOpt = Annotated[
    str,
    typer.Option(
        "--cache",
        help="Key/value cache while decoding: dynamic (grows with the text; the default, faster on CPU) or static "
        "(preallocated for prompt + --max-new-tokens; same outputs; needed by --compile).",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile the decoding step (needs --cache static; same outputs; each new batch shape compiles "
        "first, which costs more than it saves on short CPU runs).",
    ),
]
FeedbackDbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="The feedback store: a SQLAlchemy URL (sqlite:///path.db, postgresql+psycopg://user@host/name) or a "
        "SQLite file path. Default: feedback.db in the current folder. queue, import and add-reviewer create a missing "
        "SQLite store; commands that judge or read what is there (simulate, export, stats) refuse one instead.",
    ),
]
FeedbackProjectOpt = Annotated[
    str,
    typer.Option("--project", metavar="NAME", help="The feedback project: a named set of items and their judgments."),
]
