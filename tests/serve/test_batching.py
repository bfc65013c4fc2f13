"""The batching worker on the tiny Gemma, in-process: how waiting jobs form batches and engine calls."""

from __future__ import annotations

import pytest

from medtune.models.loading import load_model
from medtune.serve.batching import Batcher, expected_requests
from medtune.serve.model import ServedModel
from medtune.serve.schemas import CompletionRequest

PROMPTS = ["English: Take one tablet.\nSpanish:", "English: Rest.\nSpanish:", "English: Drink water.\nSpanish:"]


@pytest.fixture(scope="module")
def served(tiny_gemma_dir) -> ServedModel:
    return ServedModel(load_model(str(tiny_gemma_dir), dtype="float32", device="cpu"), "tiny", max_batch_size=4)


def job(served: ServedModel, prompt: str, **options):
    request = CompletionRequest(model="tiny", prompt=prompt, max_tokens=6, **options)
    request.check()
    return served.completion_job(request)


def test_waiting_jobs_form_batches_up_to_the_size_and_share_calls_by_settings(served):
    jobs = [
        job(served, PROMPTS[0], temperature=0.8, seed=1, n=2),
        job(served, PROMPTS[1], temperature=0.8, seed=2),
        job(served, PROMPTS[2], temperature=0),  # other settings: its own engine call in the same batch
        job(served, PROMPTS[0], temperature=0.8, seed=3, n=2),  # 2 + 1 + 1 + 2 > 4 sequences: the next batch
        job(served, PROMPTS[1], temperature=0, n=3),  # greedy: decoded once, repeated 3 times
    ]
    alone = [served.run_batch([j])[0] for j in jobs]
    before = served.stats.as_dict()
    batcher = Batcher(served, max_batch_size=4, batch_wait_s=0.0)
    futures = [batcher.submit(j) for j in jobs]  # all waiting before the worker starts
    batcher.start()
    together = [f.result(timeout=120) for f in futures]
    batcher.stop()
    after = served.stats.as_dict()
    assert together == alone  # a job's choices do not depend on its batch
    # batch 1: jobs 0-2 (4 sequences) in 2 calls (sampled, greedy); batch 2: jobs 3-4 in 2 calls
    assert after["engine_calls"] - before["engine_calls"] == 4
    assert after["requests"] - before["requests"] == 5
    assert [len(c) for c in together] == [2, 1, 1, 2, 3] and len({c.text for c in together[4]}) == 1
    assert together[0][0].text != together[0][1].text  # two seeded samples


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on(served):
    batcher = Batcher(served, max_batch_size=4, batch_wait_s=0.0)
    bad = job(served, PROMPTS[0], temperature=0.8, seed=1)
    bad = type(bad)(**{**bad.__dict__, "seeds": ()})  # no seeds for a sampled row: the engine refuses
    futures = [batcher.submit(bad)]
    batcher.start()
    with pytest.raises(ValueError, match="one seed per prompt"):
        futures[0].result(timeout=120)
    assert batcher.submit(job(served, PROMPTS[1], temperature=0)).result(timeout=120)[0].finish_reason == "length"
    batcher.stop()


def test_a_batch_expects_the_last_batchs_clients_and_those_that_queued_during_it():
    assert expected_requests(1, [10.5], last_batch_end=10.0) == 1  # a lone client's next request: no wait
    assert expected_requests(8, [10.5], last_batch_end=10.0) == 8  # 8 clients: wait for the other 7
    # two cohorts of 4: one queued while the other decoded; together they are 8, so wait for the others
    assert expected_requests(4, [9.1, 9.2, 9.3, 9.4], last_batch_end=10.0) == 8


def test_a_forming_batch_waits_a_quarter_of_the_last_decode_or_the_floor():
    batcher = Batcher(served=None, batch_wait_s=0.05)
    assert batcher.wait_s() == 0.05  # nothing decoded yet: the floor
    batcher._last_batch_seconds = 4.0
    assert batcher.wait_s() == 1.0  # a slow model's clients get a quarter of its decode to come back
    batcher._last_batch_seconds = 0.1
    assert batcher.wait_s() == 0.05
    assert Batcher(served=None, batch_wait_s=0.0).wait_s() == 0.0  # 0 turns waiting off
