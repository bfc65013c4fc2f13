"""Publishing a model folder to the Hugging Face Hub: a plan that lists every file, pushed as one commit.

The plan is what ``export --dry-run`` prints and exactly what a push uploads. The token and the hub are
checked (:func:`connect_to_hub`) before any slow work, and the files go up in a single commit, which
the hub applies whole or not at all, so a failed push leaves nothing half-uploaded.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.models.loading import KNOWN_MODELS, MODEL_INFO_FILE

MODEL_CARD_FILE = "README.md"
# Training leftovers that are not part of a model: resumable checkpoints and half-written folders.
_NOT_MODEL_PARTS = ("checkpoints",)
_TEMPORARY_SUFFIXES = (".partial", ".tmp")


@dataclass(frozen=True)
class UploadPlan:
    """What a push sends: the repository, its visibility and each file (path in the repo, size in bytes)."""

    repo_id: str
    private: bool
    folder: Path
    files: tuple[tuple[str, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def describe(self) -> list[str]:
        """One line for the repository, one per file, one for the total."""
        visibility = "private" if self.private else "public"
        lines = [f"Repository {self.repo_id} ({visibility}), {len(self.files)} files from {self.folder}:"]
        lines += [f"  {path}  {_human_size(size)} ({size} bytes)" for path, size in self.files]
        lines.append(f"Total {_human_size(self.total_bytes)} ({self.total_bytes} bytes).")
        return lines


def hub_model_id(name: str) -> str | None:
    """The Hugging Face id ``name`` refers to, or None for the embedded model and local folders."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if name in KNOWN_MODELS or Path(name).expanduser().exists() or name.count("/") != 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid ``OWNER/NAME``.

    Raises:
        MedtuneError: naming ``--push-to-hub`` and what a repository id looks like.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    problem = None if repo_id.count("/") == 1 else "it must be OWNER/NAME (your user or organisation, a slash, a name)"
    if problem is None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError:
            problem = "names use letters, digits, '-', '_' and '.', do not start or end with '-' or '.', at most 96 characters"
    if problem:
        raise MedtuneError(
            f"--push-to-hub {repo_id!r} is not a Hugging Face repository id: {problem}, e.g. me/medtune-en-es."
        )
    return repo_id


def model_folder_files(folder: Path) -> list[Path]:
    """The files that make up a model folder, sorted: everything but checkpoints and hidden or temporary files."""

    def is_model_part(path: Path) -> bool:
        parts = path.relative_to(folder).parts
        hidden_or_temporary = any(p.startswith(".") or p.endswith(_TEMPORARY_SUFFIXES) for p in parts)
        return path.is_file() and parts[0] not in _NOT_MODEL_PARTS and not hidden_or_temporary

    return [path for path in sorted(folder.rglob("*")) if is_model_part(path)]


def check_publishable(folder: Path) -> None:
    """Refuse a folder that is not a medtune model with its model card.

    Raises:
        MedtuneError: no ``medtune_model.json``, or no medtune card in ``README.md`` (saying which stage writes it).
    """
    if not (folder / MODEL_INFO_FILE).is_file():
        raise MedtuneError(f"{folder} is not a medtune model folder (no {MODEL_INFO_FILE}); nothing to push.")
    if not (folder / MODEL_CARD_FILE).is_file():
        raise MedtuneError(
            f"{folder} has no model card ({MODEL_CARD_FILE}): the report stage of 'medtune run' writes it after "
            "the before/after evaluation. Finish the run (medtune run RECIPE --resume) before pushing."
        )
    from huggingface_hub import metadata_load

    if "medtune" not in ((metadata_load(folder / MODEL_CARD_FILE) or {}).get("tags") or []):
        raise MedtuneError(
            f"{folder / MODEL_CARD_FILE} is not a medtune model card (a 'medtune train' output holds PEFT's "
            "template there); the report stage of 'medtune run' writes the card with the before/after evaluation. "
            "Finish the run (medtune run RECIPE --resume) before pushing."
        )


def plan_upload(folder: Path, repo_id: str, private: bool) -> UploadPlan:
    """List what pushing ``folder`` to ``repo_id`` uploads (see :func:`model_folder_files`).

    Raises:
        MedtuneError: the folder is not a medtune model with its card (:func:`check_publishable`).
    """
    check_publishable(folder)
    files = tuple((path.relative_to(folder).as_posix(), path.stat().st_size) for path in model_folder_files(folder))
    return UploadPlan(repo_id, private, folder, files)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def token_status() -> str:
    """Whether a push would find a Hugging Face token, and how to give one if not."""
    from huggingface_hub import get_token

    if get_token() is None:
        return "No Hugging Face token found: log in with 'hf auth login' or set HF_TOKEN before pushing."
    return "A Hugging Face token was found."


def connect_to_hub():
    """An authenticated ``HfApi`` whose token the hub accepted for writing.

    The token is the one ``huggingface_hub`` uses everywhere: ``HF_TOKEN``, else the saved login
    (``hf auth login``).

    Raises:
        MedtuneError: no token, the hub unreachable (naming the endpoint), offline mode, or a token the
            hub refuses or that cannot write.
    """
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if token is None:
        raise MedtuneError(
            "No Hugging Face token found, so nothing was pushed. Log in once with 'hf auth login' (it saves "
            "the token under $HF_HOME), or set HF_TOKEN to a token with write access from "
            f"{hub_endpoint()}/settings/tokens, then run the same export command again."
        )
    api = HfApi(token=token)
    try:
        account = api.whoami()
    except Exception as exc:  # network, offline mode and HTTP errors all stop the push here
        raise _hub_error(exc, "checking the token") from None
    role = account.get("auth", {}).get("accessToken", {}).get("role")
    if role == "read":
        raise MedtuneError(
            f"The Hugging Face token of {account.get('name', 'this account')} is read-only, so nothing was pushed. "
            f"Create a token with write access at {hub_endpoint()}/settings/tokens and log in with it."
        )
    return api


def push_upload(api, plan: UploadPlan) -> str:
    """Create the repository if needed and upload the plan's files in one commit; returns the commit URL.

    Raises:
        MedtuneError: the hub refused or could not be reached; nothing was committed, and a repository
            created by this call is deleted again.
    """
    from huggingface_hub import CommitOperationAdd

    try:
        existed = api.repo_exists(plan.repo_id)
        if not existed:
            api.create_repo(plan.repo_id, private=plan.private)
    except Exception as exc:
        raise _hub_error(exc, f"creating {plan.repo_id}") from None
    operations = [CommitOperationAdd(path, plan.folder / path) for path, _ in plan.files]
    try:
        commit = api.create_commit(
            plan.repo_id, operations=operations, commit_message="Upload model with medtune export"
        )
    except Exception as exc:
        if not existed:
            _delete_quietly(api, plan.repo_id)
        raise _hub_error(exc, f"uploading to {plan.repo_id}") from None
    return commit.commit_url


def _delete_quietly(api, repo_id: str) -> None:
    with contextlib.suppress(Exception):  # the upload error raised next is the one the user needs
        api.delete_repo(repo_id, missing_ok=True)


def _hub_error(exc: Exception, doing: str) -> MedtuneError:
    """One paragraph saying why the hub could not be used while ``doing`` and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint = hub_endpoint()
    if isinstance(exc, OfflineModeIsEnabled):
        return MedtuneError(
            "Hugging Face offline mode is on (HF_HUB_OFFLINE), so nothing was pushed. Unset HF_HUB_OFFLINE "
            "and run the same export command again."
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        if status == 401:
            source = "HF_TOKEN" if os.environ.get("HF_TOKEN") else "the saved login"
            return MedtuneError(
                f"{endpoint} refused the Hugging Face token from {source} (invalid or expired) while {doing}; "
                f"nothing was pushed. Create a token at {endpoint}/settings/tokens and log in with 'hf auth login' "
                "or set HF_TOKEN."
            )
        detail = exc.server_message or str(exc).splitlines()[0]
        return MedtuneError(
            f"{endpoint} answered {status} while {doing}: {detail}. Nothing was pushed (a hub commit lands whole "
            "or not at all). Check that the token may write to that owner, then run the same command again."
        )
    return MedtuneError(
        f"Could not reach the Hugging Face Hub at {endpoint} while {doing} ({type(exc).__name__}: {exc}); "
        "nothing was pushed. Check the network connection (or HF_ENDPOINT), then run the same export command again."
    )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled, unit = next((size / 1024**k, u) for k, u in ((3, "GB"), (2, "MB"), (1, "KB")) if size >= 1024**k)
    return f"{scaled:.1f} {unit}"
