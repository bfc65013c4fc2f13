"""``medtune export``: a trained model as a standalone folder, on the Hugging Face Hub, or both."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError
from medtune.models.adapters import check_adapter_portable, export_as_is, export_merged, trained_model_info
from medtune.models.publish import (
    check_publishable,
    check_repo_id,
    connect_to_hub,
    plan_upload,
    push_upload,
    token_status,
)


def model_folder_of(run_or_model: Path) -> Path:
    """The trained model folder of a run folder (from its ``run.json``), or the model folder itself."""
    from medtune.runs import RunFolder

    if (run_or_model / "run.json").is_file():
        run = RunFolder(run_or_model, "")
        if train_done := run.done("train"):
            return Path(train_done["output_dir"])
        if preference := run.done("dpo"):  # an rlaif run: its final model is the preference-tuned one
            return Path(preference["dpo_model"])
    return run_or_model


def export_model(
    run_or_model: Path,
    out: Path | None,
    merge: bool,
    hub_repo: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    log: Callable[[str], Any] = print,
) -> None:
    """Export a trained model: merged or as it is, into ``out`` and/or pushed to ``hub_repo``.

    Args:
        run_or_model: a run folder or a trained model folder.
        out: the folder to write (must be new or empty); optional when pushing (a merged model is
            then built in a temporary folder).
        merge: merge the LoRA adapter into its base; without it the folder is exported as it is, which
            for an adapter needs a base that is a hub id.
        hub_repo: ``OWNER/NAME`` to push to, with the model card.
        private: create the hub repository private.
        dry_run: list what would be uploaded (each file and its size) and upload nothing.
        log: receives progress and the upload list.
    Raises:
        MedtuneError: bad option combination, not a medtune model, an adapter that needs ``--merge``,
            ``out`` not empty, no model card, no token or no network (checked before the merge).
    """
    if hub_repo is None:
        if dry_run or private:
            raise MedtuneError("--dry-run and --private apply only to --push-to-hub OWNER/NAME; add it or drop them.")
        if out is None:
            raise MedtuneError("Give --out DIR for the exported model, or --push-to-hub OWNER/NAME to publish it.")
    else:
        check_repo_id(hub_repo)
    model_dir = model_folder_of(run_or_model)
    if merge:
        trained_model_info(model_dir)
    else:
        check_adapter_portable(model_dir)
    if hub_repo:
        check_publishable(model_dir)
    hub = connect_to_hub() if hub_repo and not dry_run else None  # fail fast, before a slow merge
    with tempfile.TemporaryDirectory(prefix="medtune-export-") as scratch:
        if merge:
            folder = export_merged(model_dir, out or Path(scratch) / "model", log)
        else:
            folder = export_as_is(model_dir, out) if out else model_dir
        if out:
            log(f"{'Merged model' if merge else 'Model'} written to {out}")
        if hub_repo is None:
            return
        plan = plan_upload(folder, hub_repo, private)
        for line in plan.describe():
            log(line)
        if dry_run:
            log(f"Dry run: nothing was uploaded. {token_status()}")
            return
        url = push_upload(hub, plan)
        log(f"Pushed {len(plan.files)} files to {hub_repo} in one commit: {url}")
