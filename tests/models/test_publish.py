"""``medtune export`` with and without ``--push-to-hub``: the exact upload list and every refusal.

No hub is reachable here, so pushing is tested through ``--dry-run`` (which lists exactly what a push
uploads) and through its error paths, run as the user runs them: the CLI in a subprocess, with the
token and endpoint given the way ``huggingface_hub`` reads them (``HF_TOKEN``, ``HF_HOME``, ``HF_ENDPOINT``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cli_checks import assert_user_error
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.models.adapters import export_merged
from medtune.models.gguf import EMBEDDED_NAME
from medtune.models.loading import MODEL_INFO_FILE, ModelRef
from medtune.recipes.loader import validate_recipe
from medtune.report.model_card import card_metadata, model_card

HUB_BASE = "google/gemma-3-270m"
# "  adapter_model.safetensors  19.4 KB (19848 bytes)"
UPLOAD_LINE = re.compile(r"^  (\S+)  \S+ \S+ \((\d+) bytes\)$")


def _recipe(model: str):
    return validate_recipe({"name": "tiny-train", "task": "translation", "model": model, "data": {"train": "a.tsv"}})


def _files_and_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _listed(output: str) -> dict[str, int]:
    """The files a dry run lists, with their sizes in bytes."""
    matches = [UPLOAD_LINE.match(line) for line in output.splitlines()]
    return {m.group(1): int(m.group(2)) for m in matches if m}


def _add_leftovers(folder: Path) -> None:
    """What a model folder may also hold that is not the model: a checkpoint, hidden and half-written files."""
    (folder / "checkpoints" / "step-4").mkdir(parents=True)
    (folder / "checkpoints" / "step-4" / "state.pt").write_bytes(b"0" * 100)
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "metrics.json.tmp").write_text("{", encoding="utf-8")


@pytest.fixture
def run_with_card(trained_output, tmp_path) -> Path:
    """A copy of a finished run whose model (an adapter on a local base) has its medtune model card."""
    run = tmp_path / "run"
    shutil.copytree(trained_output.parent, run)
    model = run / trained_output.name
    info = json.loads((model / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    (model / "README.md").write_text(model_card(_recipe(info["base_model"]), [], {"train": 4}), encoding="utf-8")
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    manifest["stages"]["train"]["output_dir"] = str(model)
    (run / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run


@pytest.fixture
def hub_adapter(trained_output, tmp_path) -> Path:
    """An adapter folder whose base is a hub id (as after training on ``google/gemma-3-270m``), with leftovers."""
    model = tmp_path / "hub-adapter"
    shutil.copytree(trained_output, model)
    for name, key in ((MODEL_INFO_FILE, "base_model"), ("adapter_config.json", "base_model_name_or_path")):
        record = json.loads((model / name).read_text(encoding="utf-8"))
        (model / name).write_text(json.dumps({**record, key: HUB_BASE}), encoding="utf-8")
    (model / "README.md").write_text(model_card(_recipe(HUB_BASE), [], {"train": 4}), encoding="utf-8")
    _add_leftovers(model)
    return model


MODEL_FILES = [
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    MODEL_INFO_FILE,
    "metrics.json",
    "recipe.yaml",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_dry_run_lists_exactly_the_adapter_files_and_uploads_nothing(hub_adapter):
    before = _files_and_sizes(hub_adapter)
    result = CliRunner().invoke(app, ["export", str(hub_adapter), "--push-to-hub", "me/tiny-en-es", "--dry-run"])
    assert result.exit_code == 0, result.output
    listed = _listed(result.output)
    assert sorted(listed) == MODEL_FILES  # no checkpoint, hidden or half-written file
    assert listed == {name: before[name] for name in MODEL_FILES}
    assert f"Repository me/tiny-en-es (public), 8 files from {hub_adapter}:" in result.output
    assert f"Total {sum(listed.values()) / 1024:.1f} KB ({sum(listed.values())} bytes)." in result.output
    assert "Dry run: nothing was uploaded." in result.output
    assert _files_and_sizes(hub_adapter) == before

    private = CliRunner().invoke(
        app, ["export", str(hub_adapter), "--push-to-hub", "me/tiny-en-es", "--private", "--dry-run"]
    )
    assert "Repository me/tiny-en-es (private), 8 files" in private.output


def test_dry_run_of_a_merge_lists_the_merged_folder_it_would_upload(run_with_card, tmp_path, monkeypatch):
    out = tmp_path / "merged"
    args = ["export", str(run_with_card), "--merge", "--push-to-hub", "me/tiny-en-es", "--dry-run"]
    with_out = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert with_out.exit_code == 0, with_out.output
    assert _listed(with_out.output) == _files_and_sizes(out)  # exactly the folder written
    assert "model.safetensors" in _listed(with_out.output) and "adapter_config.json" not in _listed(with_out.output)

    # Without --out the merge goes to a temporary folder: the same files, then nothing is left behind.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    without_out = CliRunner().invoke(app, args)
    assert without_out.exit_code == 0, without_out.output
    assert _listed(without_out.output) == _listed(with_out.output)
    merged_in = Path(re.search(r"files from (\S+):", without_out.output).group(1))
    assert merged_in.parent.parent == scratch and not merged_in.exists()
    assert list(scratch.iterdir()) == []


def test_export_without_merge_copies_the_adapter_with_its_card(hub_adapter, tmp_path):
    out = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", str(hub_adapter), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(_files_and_sizes(out)) == MODEL_FILES
    for name in MODEL_FILES:
        assert (out / name).read_bytes() == (hub_adapter / name).read_bytes(), name


@pytest.mark.parametrize("push", [[], ["--push-to-hub", "me/tiny-en-es", "--dry-run"]])
def test_an_adapter_on_a_local_base_needs_merge(run_with_card, tmp_path, push):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", str(run_with_card), "--out", str(out), *push])
    assert_user_error(result, "holds a LoRA adapter on", "not a Hugging Face model id", "Add --merge")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--push-to-hub", "tiny-en-es", "--dry-run"], "is not a Hugging Face repository id: it must be OWNER/NAME"),
        (["--push-to-hub", "me/-bad", "--dry-run"], "is not a Hugging Face repository id: names use letters"),
        (["--dry-run", "--out", "x"], "--dry-run and --private apply only to --push-to-hub"),
        ([], "Give --out DIR for the exported model, or --push-to-hub OWNER/NAME"),
    ],
)
def test_option_mistakes_are_named(hub_adapter, args, message):
    assert_user_error(CliRunner().invoke(app, ["export", str(hub_adapter), *args]), message)


def test_a_folder_with_peft_s_template_card_is_not_pushed(trained_output):
    # A 'medtune train' output holds PEFT's template README, not medtune's card with its evaluation.
    result = CliRunner().invoke(app, ["export", str(trained_output), "--merge", "--push-to-hub", "me/x", "--dry-run"])
    assert_user_error(result, "README.md is not a medtune model card", "medtune run RECIPE --resume")


def test_merged_export_switches_the_card_to_a_transformers_model(run_with_card, tmp_path):
    model = run_with_card / "model"
    out = export_merged(model, tmp_path / "merged", log=lambda _: None)
    before, after = (_front_matter((folder / "README.md").read_text(encoding="utf-8")) for folder in (model, out))
    assert before[0]["library_name"] == "peft" and "lora" in before[0]["tags"]
    assert after[0]["library_name"] == "transformers" and "lora" not in after[0]["tags"]
    assert after[1].strip() == before[1].strip()  # the card's text is unchanged


def _front_matter(card: str) -> tuple[dict, str]:
    _, header, body = card.split("---\n", 2)
    return yaml.safe_load(header), body


def _closed_port_endpoint() -> str:
    """An endpoint nothing listens on: a connection is refused at once (no waiting on timeouts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run_cli(
    args: list[str], tmp_path: Path, token: str, endpoint: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess:
    """``python -m medtune.cli`` with a fresh Hugging Face home, the given token and hub (default: unreachable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    home = tmp_path / "hf-home"
    home.mkdir(exist_ok=True)
    env |= {"HF_HOME": str(home), "HF_TOKEN": token, "HF_ENDPOINT": endpoint or _closed_port_endpoint()}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(medtune.__file__).parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "medtune.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _paragraph(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_push_without_a_token_says_how_to_log_in(run_with_card, tmp_path):
    out = tmp_path / "merged"
    args = ["export", str(run_with_card), "--merge", "--out", str(out), "--push-to-hub", "me/tiny-en-es"]
    result = _run_cli(args, tmp_path, token="")
    message = _paragraph(result)
    assert "No Hugging Face token found, so nothing was pushed." in message
    assert "'hf auth login'" in message and "set HF_TOKEN" in message
    assert not out.exists()  # refused before the merge


def test_push_with_a_token_and_no_network_names_the_endpoint_fast(run_with_card, tmp_path):
    out = tmp_path / "merged"
    args = ["export", str(run_with_card), "--merge", "--out", str(out), "--push-to-hub", "me/tiny-en-es"]
    # a refused connection must fail at once, not in a retry loop (a hang raises TimeoutExpired)
    result = _run_cli(args, tmp_path, token="hf_" + "x" * 34, timeout=60)
    message = _paragraph(result)
    endpoint = re.search(r"Could not reach the Hugging Face Hub at (http://127\.0\.0\.1:\d+) ", message)
    assert endpoint, message
    assert "nothing was pushed" in message
    assert not out.exists()


class _StandInHub(BaseHTTPRequestHandler):
    """Answers the token check (``/api/whoami-v2``) as the hub does for a refused or a read-only token."""

    answers = {"hf_refused": (401, {"error": "Invalid credentials in Authorization header"})}
    answers["hf_readonly"] = (200, {"name": "me", "auth": {"accessToken": {"role": "read"}}})
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.requests.append(self.path)
        token = self.headers.get("authorization", "").removeprefix("Bearer ")
        status, body = self.answers[token]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("hf_refused", "refused the Hugging Face token from HF_TOKEN (invalid or expired) while checking the token"),
        ("hf_readonly", "The Hugging Face token of me is read-only, so nothing was pushed."),
    ],
)
def test_push_with_a_token_the_hub_will_not_take(hub_adapter, tmp_path, token, message):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        result = _run_cli(
            ["export", str(hub_adapter), "--push-to-hub", "me/tiny-en-es"], tmp_path, token, endpoint=endpoint
        )
    finally:
        server.shutdown()
    assert message in _paragraph(result)
    assert _StandInHub.requests[-1] == "/api/whoami-v2"  # stopped at the token check, before any upload


def test_card_front_matter_is_hub_metadata_without_placeholders(tmp_path):
    hub_card = model_card(_recipe(HUB_BASE), [], {"train": 4})
    metadata, body = _front_matter(hub_card)
    assert metadata == {
        "base_model": HUB_BASE,
        "library_name": "peft",
        "language": ["en", "es"],
        "license": "other",
        "license_name": "same-as-base-model",
        "license_link": f"https://huggingface.co/{HUB_BASE}",
        "tags": ["medtune", "medical", "translation", "lora"],
    }
    assert body.startswith("# tiny-train: medical en->es translation\n")
    assert f"Fine-tuned with medtune {medtune.__version__} from **{HUB_BASE}** (lora)." in body

    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    local = validate_recipe(
        {"name": "q", "task": "qa", "model": str(tmp_path), "data": {"train": "q.jsonl"}, "train": {"method": "full"}}
    )
    local_metadata, _ = _front_matter(model_card(local, [], {"train": 4}))
    # a local base is no hub id: no base_model, no language the recipe does not state
    assert local_metadata == {
        "library_name": "transformers",
        "license": "other",
        "tags": ["medtune", "medical", "question-answering"],
    }
    for card in (hub_card, model_card(local, [], {"train": 4})):
        assert not re.search(r"TODO|example\.com|<link>|\]\(#|\]\(\)|github\.com/\)|More Information Needed", card)
        for link in re.findall(r"\]\(([^)]*)\)", card):
            assert re.fullmatch(r"https://[\w.-]+\.\w+/\S+", link), link


def test_card_of_the_embedded_base_carries_the_gemma_licence():
    metadata = card_metadata(_recipe(EMBEDDED_NAME), ModelRef(EMBEDDED_NAME, "unused"))
    # the embedded GGUF base is no hub id, so no base_model; its licence is Gemma's
    assert yaml.safe_load(metadata.to_yaml()) == {
        "language": ["en", "es"],
        "library_name": "peft",
        "license": "gemma",
        "tags": ["medtune", "medical", "translation", "lora"],
    }
