"""The reviewer app's parts that need no HTTP server: the rate limit's token bucket, the glossary spans,
and Nagle's algorithm off on the connections of the port it serves."""

from __future__ import annotations

import pytest

from medtune.data.glossary import Term, load_glossary
from medtune.feedback.glossary_terms import GlossaryHighlighter, TermSpan
from medtune.feedback.rate_limit import TokenBuckets


class FakeClock:
    """A clock the test moves by hand, so the bucket's refill is exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("ana") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ana") == pytest.approx(0.5)  # empty: one token takes 1/rate = 0.5 s
    assert buckets.take("ben") == 0.0  # buckets are per reviewer
    clock.now += 0.25  # half a token back
    assert buckets.take("ana") == pytest.approx(0.25)
    clock.now += 0.25  # a whole token
    assert buckets.take("ana") == 0.0
    assert buckets.take("ana") == pytest.approx(0.5)
    clock.now += 100.0  # refills stop at the burst size
    assert [buckets.take("ana") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]


def test_token_bucket_refuses_settings_that_would_block_everyone() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBuckets(rate=0.0, burst=10)
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBuckets(rate=1.0, burst=0)


def test_glossary_spans_point_at_the_terms_as_written_in_the_source() -> None:
    glossary = [Term("wound", "herida"), Term("blood pressure", "presión arterial"), Term("stroke", "ictus")]
    source = "Blood pressure rose; the WOUNDS healed. Heat stroke, 🩺 then a wound."
    spans = GlossaryHighlighter(glossary).terms_in(source)
    assert spans == [
        TermSpan("blood pressure", "presión arterial", 0, 14),
        TermSpan("wound", "herida", 25, 31),
        TermSpan("stroke", "ictus", 45, 51),
        TermSpan("wound", "herida", 62, 67),  # 🩺 is one code point (two in UTF-16)
    ]
    assert [source[s.start : s.end] for s in spans] == ["Blood pressure", "WOUNDS", "stroke", "wound"]
    assert spans[0].as_json() == {"en": "blood pressure", "es": "presión arterial", "start": 0, "end": 14}


def test_bundled_glossary_spans_follow_the_terminology_metric() -> None:
    # The longest term wins where terms overlap (the metric's rule): "sterile bandage", not "bandage".
    highlighter = GlossaryHighlighter(load_glossary("demo:glossary_en_es.tsv"))
    source = "Change the sterile bandages and keep the wound dry."
    assert [(s.en, s.es, source[s.start : s.end]) for s in highlighter.terms_in(source)] == [
        ("sterile bandage", "vendaje estéril", "sterile bandages"),
        ("wound", "herida", "wound"),
    ]


def test_no_glossary_and_unmappable_text_highlight_nothing() -> None:
    assert GlossaryHighlighter([]).terms_in("the wound") == []
    # NFKD folds "½" into "1⁄2", two words where the source has one: positions would be wrong.
    assert GlossaryHighlighter([Term("wound", "herida")]).terms_in("a ½ inch wound") == []


def test_connections_to_a_bound_port_have_nagle_off() -> None:
    # uvicorn serves our socket through asyncio, which sets TCP_NODELAY only on sockets declared TCP; with
    # Nagle on, a response written in two parts (headers, body) waited ~40 ms for the client's delayed ACK.
    import asyncio
    import socket

    from medtune.commands.serve import bind_port

    async def nodelay_of_accepted_connection() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Record(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = bind_port("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Record, sock=listening)
        _reader, writer = await asyncio.open_connection("127.0.0.1", listening.getsockname()[1])
        try:
            return await asyncio.wait_for(accepted, timeout=30)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(nodelay_of_accepted_connection()) == 1
