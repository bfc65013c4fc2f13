"""``medtune serve`` on other kinds of model (a real uvicorn server in a thread, the official client),
and the command's refusal of a port in use."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import openai
import pytest
from cli_checks import assert_user_error, run_cli
from live_server import uvicorn_in_thread

from medtune.endpoint import Endpoint, EndpointSettings
from medtune.generate.engine import SamplingSettings, generate_texts, sample_texts
from medtune.models.loading import load_model
from medtune.serve.app import ServeSettings, create_app

SOURCES = ["Take one tablet twice a day.", "The patient has a fever.", "Rest and drink water."]


def test_marian_completions_are_the_translations_of_generate_texts(tiny_marian_dir):
    loaded = load_model(str(tiny_marian_dir), dtype="float32", device="cpu")
    expected = generate_texts(loaded.model, loaded.tokenizer, SOURCES, max_new_tokens=20, progress=None)
    with uvicorn_in_thread(create_app(ServeSettings("marian", batch_wait_ms=20), loaded)) as url:
        endpoint = Endpoint(EndpointSettings(url, "marian", concurrency=3))
        translations = endpoint.map(lambda s: endpoint.complete(s, max_tokens=20)[0], SOURCES)
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="translation .*use /v1/completions"):
            client.chat.completions.create(model="marian", messages=[{"role": "user", "content": "hi"}])
    assert translations == expected and all(translations)


@pytest.fixture(scope="module")
def adapter_output(tiny_gemma_dir, tmp_path_factory) -> Path:
    """A training-output-shaped folder: a LoRA adapter (random, so it visibly changes the model) naming its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("adapter-output")
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_gemma_dir).save_pretrained(folder)
    (folder / "medtune_model.json").write_text(json.dumps({"base_model": str(tiny_gemma_dir)}))
    return folder


def test_a_training_output_is_served_as_base_plus_adapter(adapter_output, tiny_gemma_dir):
    prompt = "English: The patient has a fever.\nSpanish:"
    greedy = SamplingSettings(max_new_tokens=8)

    def local(model_dir: Path) -> str:
        loaded = load_model(str(model_dir), dtype="float32", device="cpu")
        return sample_texts(loaded.model, loaded.tokenizer, [prompt], greedy, add_special_tokens=True)[0].strip()

    with uvicorn_in_thread(create_app(ServeSettings(str(adapter_output), device="cpu", dtype="float32"))) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        assert [m.id for m in client.models.list().data] == [str(adapter_output)]
        served = client.completions.create(model=str(adapter_output), prompt=prompt, max_tokens=8, temperature=0)
    assert served.choices[0].text == local(adapter_output) != local(tiny_gemma_dir)


def test_chat_on_a_model_without_a_chat_template_is_a_clear_400(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    with uvicorn_in_thread(create_app(ServeSettings("plain", served_name="base"), loaded)) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}])
        text = client.completions.create(model="base", prompt="English: hi\nSpanish:", max_tokens=3, temperature=0)
    assert "base cannot chat" in refused.value.body["message"] and "no chat template" in refused.value.body["message"]
    assert text.choices[0].finish_reason in ("stop", "length")


def test_a_port_in_use_is_one_line_naming_it_before_the_model_loads():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["serve", "--model", "no-such-model", "--port", port])
    assert_user_error(result, f"Port {port} on 127.0.0.1 is already in use")  # not the unknown model
    assert len(result.output.strip().splitlines()) == 1


def test_serve_refuses_bad_settings_by_option_name():
    assert_user_error(run_cli(["serve", "--model", "m", "--api-key", " "]), "--api-key must not be empty")
