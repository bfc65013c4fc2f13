"""``medtune serve`` in a subprocess on the tiny ChatML Gemma, driven with the official ``openai`` client.

Expected texts come from medtune's own engine (``sample_texts`` with the derived seeds) and from
``medtune generate``; expected log-probabilities from plain forward passes of the model.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import torch
from cli_checks import run_cli

from medtune.data.chat_template import render_chat_prompt, stop_token_ids
from medtune.endpoint import Endpoint, EndpointSettings
from medtune.generate.engine import SamplingSettings, derive_seed, sample_texts
from medtune.models.loading import load_model

HELLO = [{"role": "user", "content": "My knee hurts when I climb stairs."}]


@pytest.fixture(scope="module")
def client(medtune_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=medtune_server.base_url, api_key=medtune_server.api_key, max_retries=0)


@pytest.fixture(scope="module")
def loaded(medtune_server):
    return load_model(str(medtune_server.model_dir), dtype="float32", device="cpu")


def chat(client, server, **options):
    return client.chat.completions.create(model=server.model, messages=options.pop("messages", HELLO), **options)


def expected_chat_samples(loaded, seed: int, n: int, temperature: float, max_tokens: int) -> list[str]:
    """What medtune's engine gives for sample k with seed derive_seed(seed, "1", k)."""
    prompt = render_chat_prompt(loaded.tokenizer, HELLO)
    settings = SamplingSettings(max_tokens, temperature).with_stop_tokens(stop_token_ids(loaded.tokenizer))
    seeds = [derive_seed(seed, "1", k) for k in range(n)]
    texts = sample_texts(loaded.model, loaded.tokenizer, [prompt] * n, settings, seeds)
    return [t.strip() for t in texts]


def test_models_lists_the_model_under_its_model_string(client, medtune_server):
    assert [m.id for m in client.models.list().data] == [str(medtune_server.model_dir)]
    assert client.models.retrieve(medtune_server.model).owned_by == "medtune"
    started = " ".join(medtune_server.log_path.read_text().split())
    assert f"at {medtune_server.base_url}" in started and "API key required" in started and "Warning" not in started


def test_n_seeded_samples_equal_the_engine_with_derived_seeds(client, medtune_server, loaded):
    response = chat(client, medtune_server, n=3, temperature=0.9, seed=11, max_tokens=12)
    texts = [c.message.content for c in response.choices]
    assert texts == expected_chat_samples(loaded, 11, 3, 0.9, 12)
    assert len(set(texts)) == 3
    assert [c.index for c in response.choices] == [0, 1, 2]
    prompt_tokens = len(
        loaded.tokenizer(render_chat_prompt(loaded.tokenizer, HELLO), add_special_tokens=False).input_ids
    )
    assert response.usage.prompt_tokens == prompt_tokens
    assert (
        response.usage.completion_tokens <= 3 * 12
        and response.usage.total_tokens == prompt_tokens + response.usage.completion_tokens
    )


def test_a_chat_request_equals_medtune_generate_with_the_same_seed_and_prompt_id(medtune_server, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q7", "messages": HELLO}) + "\n")
    out = tmp_path / "answers.jsonl"
    options = ["--temperature", "0.8", "--seed", "5", "--num-return-sequences", "2", "--max-new-tokens", "10"]
    model = ["--model", medtune_server.model_dir, "--device", "cpu", "--dtype", "float32"]
    result = run_cli(["generate", *model, "--data", prompts, "--out", out, *options])
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    settings = EndpointSettings(medtune_server.base_url, medtune_server.model, medtune_server.api_key)
    texts = Endpoint(settings).chat(HELLO, n=2, temperature=0.8, seed=5, max_tokens=10, prompt_id="q7")
    assert texts == row["outputs"] and len(set(texts)) == 2


def test_same_seed_same_text_other_seed_other_text(client, medtune_server):
    def reply(seed: int) -> str:
        return chat(client, medtune_server, temperature=1.0, seed=seed, max_tokens=16).choices[0].message.content

    first = reply(1)
    assert reply(1) == first
    assert reply(2) != first


def test_streamed_chunks_concatenate_to_the_unstreamed_reply(client, medtune_server):
    options = dict(n=2, temperature=0.9, seed=21, max_tokens=16)
    whole = [c.message.content for c in chat(client, medtune_server, **options).choices]
    pieces: dict[int, list[str]] = {0: [], 1: []}
    finish: dict[int, str] = {}
    usage = None
    for chunk in chat(client, medtune_server, stream=True, stream_options={"include_usage": True}, **options):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            pieces[choice.index].append(choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert ["".join(pieces[k]) for k in (0, 1)] == whole
    assert sum(len(p) > 0 for p in pieces[0]) > 1  # it really streamed, piece by piece
    assert set(finish) == {0, 1} and usage is not None and usage.completion_tokens > 0


def test_stop_strings_cut_the_text_and_finish_reason_says_why(client, medtune_server):
    prompt = "English: Take one tablet twice a day.\nSpanish:"
    full = client.completions.create(model=medtune_server.model, prompt=prompt, temperature=0, max_tokens=20)
    text = full.choices[0].text
    assert full.choices[0].finish_reason == "length" and full.usage.completion_tokens == 20
    stop = text[len(text) // 2 :][:2]
    cut = client.completions.create(
        model=medtune_server.model, prompt=prompt, temperature=0, max_tokens=20, stop=[stop, "@@"]
    )
    assert cut.choices[0].text == text[: text.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 20


def own_greedy_logprobs(loaded, prompt_ids: list[int], steps: int, k: int):
    """Greedy decoding by full forward passes (no cache): each step's chosen token, its log-prob, the top k."""
    ids = list(prompt_ids)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logps = torch.log_softmax(loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            values, top = logps.topk(k)
            token = int(top[0])
            out.append((token, float(logps[token]), top.tolist(), values.tolist()))
            ids.append(token)
    return out


def test_chat_logprobs_equal_the_models_own_log_softmax(client, medtune_server, loaded):
    tok = loaded.tokenizer
    response = chat(client, medtune_server, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3)
    content = response.choices[0].logprobs.content
    prompt_ids = tok(render_chat_prompt(tok, HELLO), add_special_tokens=False).input_ids
    own = own_greedy_logprobs(loaded, prompt_ids, len(content), 3)
    assert len(content) == 8 and response.choices[0].finish_reason == "length"
    for entry, (token, logp, top_ids, top_values) in zip(content, own, strict=True):
        assert entry.token == tok.decode([token])
        assert entry.logprob == pytest.approx(logp, abs=1e-4)
        assert [t.token for t in entry.top_logprobs] == [tok.decode([i]) for i in top_ids]
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(top_values, abs=1e-4)


def test_completion_logprobs_equal_the_models_own_log_softmax(client, medtune_server, loaded):
    prompt = "English: Rest and drink water.\nSpanish:"
    response = client.completions.create(
        model=medtune_server.model, prompt=prompt, temperature=0, max_tokens=6, logprobs=2
    )
    logprobs = response.choices[0].logprobs
    own = own_greedy_logprobs(loaded, loaded.tokenizer(prompt).input_ids, 6, 2)
    assert logprobs.token_logprobs == pytest.approx([logp for _, logp, _, _ in own], abs=1e-4)
    assert [list(top.values()) for top in logprobs.top_logprobs] == [pytest.approx(v, abs=1e-4) for *_, v in own]
    assert "".join(logprobs.tokens).strip() == response.choices[0].text


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_api_key_is_refused_with_401(medtune_server, key):
    client = openai.OpenAI(base_url=medtune_server.base_url, api_key=key or "unused", max_retries=0)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    raw = httpx.get(f"{medtune_server.base_url}/models", headers=headers)
    assert raw.status_code == 401
    assert (
        raw.json()["error"]["code"] == "invalid_api_key" and "Authorization: Bearer" in raw.json()["error"]["message"]
    )
    with pytest.raises(openai.AuthenticationError):
        chat(client, medtune_server, max_tokens=2)


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"model": "gpt-4o"}, openai.NotFoundError, "serves"),
        ({"n": 0}, openai.BadRequestError, "'n' must be between 1 and 128"),
        ({"temperature": -1}, openai.BadRequestError, "'temperature' must be 0"),
        ({"top_p": 0}, openai.BadRequestError, "'top_p' must be in (0, 1]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, openai.BadRequestError, "role 'tool'"),
        ({"messages": []}, openai.BadRequestError, "messages"),
        ({"frequency_penalty": 0.5}, openai.BadRequestError, "not supported"),
        ({"max_tokens": 100_000}, openai.BadRequestError, "exceeds the model's context"),
    ],
)
def test_bad_requests_get_openai_style_errors(client, medtune_server, options, error, fragment):
    options = {"model": medtune_server.model, "messages": HELLO, "max_tokens": 2} | options
    with pytest.raises(error) as raised:
        client.chat.completions.create(**options)
    assert fragment in raised.value.body["message"]


def test_concurrent_requests_share_batches_and_give_the_sequential_texts(medtune_server):
    settings = EndpointSettings(medtune_server.base_url, medtune_server.model, medtune_server.api_key, concurrency=6)
    endpoint = Endpoint(settings)
    seeds = list(range(100, 106))

    def ask(seed: int) -> list[str]:
        return endpoint.chat(HELLO, temperature=0.9, seed=seed, max_tokens=24)

    stats = f"{medtune_server.base_url.removesuffix('/v1')}/medtune/stats"
    headers = {"Authorization": f"Bearer {medtune_server.api_key}"}
    before = httpx.get(stats, headers=headers).json()
    together = endpoint.map(ask, seeds)
    after = httpx.get(stats, headers=headers).json()
    assert after["requests"] - before["requests"] == 6
    assert after["engine_calls"] - before["engine_calls"] < 6  # some requests were decoded together
    assert after["largest_batch"] > 1
    assert together == [ask(seed) for seed in seeds]


def test_unknown_routes_and_models_get_openai_style_404s(medtune_server):
    headers = {"Authorization": f"Bearer {medtune_server.api_key}"}
    route = httpx.get(f"{medtune_server.base_url}/nothing", headers=headers)
    model = httpx.get(f"{medtune_server.base_url}/models/other", headers=headers)
    assert route.status_code == 404 and route.json()["error"]["type"] == "not_found_error"
    assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"
