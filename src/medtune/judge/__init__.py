"""Judges behind one interface: ``reference`` (offline), ``llm`` (a rubric sent to a model) and ``ensemble``.

Start at :func:`medtune.judge.build.build_judge` (a judge from a spec) and
:func:`medtune.judge.run.judge_file` (judge items into a resumable JSONL file).
"""

from medtune.judge.base import Judge, JudgeItem, Judgment
from medtune.judge.build import build_judge
from medtune.judge.run import judge_file

__all__ = ["Judge", "JudgeItem", "Judgment", "build_judge", "judge_file"]
