"""``medtune feedback ...``: fill, review, drain and learn from the human-feedback store.

Each subcommand lives in its own module and is registered here with one line.
"""

from __future__ import annotations

import typer

feedback_app = typer.Typer(
    help="Human feedback for translation: queue machine translations for reviewers, serve the reviewer page, "
    "import, simulate, export and summarise judgments, and score translations with a trained reward model. "
    "Every command takes --db (default: the SQLite file feedback.db in the current folder).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from medtune.commands.feedback_add_reviewer import add_reviewer  # noqa: E402 (one line per subcommand, below)
from medtune.commands.feedback_export import export  # noqa: E402
from medtune.commands.feedback_import import import_  # noqa: E402
from medtune.commands.feedback_queue import queue  # noqa: E402
from medtune.commands.feedback_score import score  # noqa: E402
from medtune.commands.feedback_serve import serve_reviewers  # noqa: E402
from medtune.commands.feedback_simulate import simulate  # noqa: E402
from medtune.commands.feedback_stats import stats  # noqa: E402

feedback_app.command("add-reviewer")(add_reviewer)
feedback_app.command("queue")(queue)
feedback_app.command("import")(import_)
feedback_app.command("simulate")(simulate)
feedback_app.command("export")(export)
feedback_app.command("stats")(stats)
feedback_app.command("serve")(serve_reviewers)
feedback_app.command("score")(score)
