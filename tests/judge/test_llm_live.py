"""The llm judge against a live ``medtune serve`` (the tiny ChatML Gemma, float32, CPU) through the openai client.

The tiny model writes no JSON, so every reply is unreadable: the test checks the round trip
(rubric prompt -> request -> reply equal to medtune's own engine on the same conversation), that
unreadable replies are re-asked with the reply shown back, and that the items are then listed as
failures, never scored.
"""

from __future__ import annotations

from medtune.judge.backends import EndpointChatBackend, LocalChatBackend
from medtune.judge.base import JudgeItem
from medtune.judge.llm import LLMJudge
from medtune.judge.rubric import retry_messages, rubric_messages

ITEMS = [
    JudgeItem("a", "What lowers a fever?", "Paracetamol or ibuprofen.", reference="Antipyretics such as paracetamol."),
    JudgeItem("b", "What is hypertension?", "High blood pressure."),
]
CRITERIA = ("factual_accuracy", "completeness", "key_point_coverage")


def test_endpoint_replies_equal_the_local_engine(medtune_server):
    endpoint = EndpointChatBackend(
        medtune_server.base_url, medtune_server.model, api_key=medtune_server.api_key, max_tokens=12
    )
    local = LocalChatBackend(str(medtune_server.model_dir), max_new_tokens=12, device="cpu", dtype="float32")
    first = rubric_messages(ITEMS[0], CRITERIA)
    conversations = [
        first,
        rubric_messages(ITEMS[1], CRITERIA),
        retry_messages(first, "not json", "no JSON object", "{}"),
    ]
    replies = endpoint.reply(conversations)
    assert replies == local.reply(conversations)
    assert all(reply.strip() for reply in replies)  # the model did write something, which the judge then cannot read


def test_unreadable_live_replies_are_retried_then_listed(medtune_server):
    backend = EndpointChatBackend(
        medtune_server.base_url, medtune_server.model, api_key=medtune_server.api_key, max_tokens=12
    )
    judge = LLMJudge(backend, retries=1)
    judgments = judge.score(ITEMS)
    assert [j.score for j in judgments] == [None, None]
    assert all("after 2 replies" in j.failed for j in judgments)
    assert judge.stats.retries == 2 and judge.stats.parse_failures == 2
    assert [item_id for item_id, _ in judge.stats.failures] == ["a", "b"]
