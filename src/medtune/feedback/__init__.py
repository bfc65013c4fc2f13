"""Human feedback for translation: the feedback store, the reviewer web app, and RLHF from reviewers' judgments.

``from medtune.feedback import rlhf_update`` gives the online update (:mod:`medtune.feedback.rlhf`); it is
imported on first use, so the store and the web app do not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medtune.feedback.rlhf import rlhf_update

__all__ = ["rlhf_update"]


def __getattr__(name: str):
    if name == "rlhf_update":
        from medtune.feedback.rlhf import rlhf_update

        return rlhf_update
    raise AttributeError(f"module 'medtune.feedback' has no attribute {name!r}")
