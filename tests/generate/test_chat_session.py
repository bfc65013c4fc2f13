"""The chat session and its REPL on the tiny Gemma model, driven through their inputs (no terminal)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE, render_chat_prompt
from medtune.errors import MedtuneError
from medtune.generate.chat_session import HELP, ChatSession, ReplyStreamer, run_repl
from medtune.generate.engine import SamplingSettings, sample_texts
from medtune.models.loading import load_model

GREEDY = SamplingSettings(max_new_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def chat_model(tiny_gemma_dir):
    """The tiny Gemma model with a fresh tokenizer carrying the Gemma chat template."""
    loaded = load_model(str(tiny_gemma_dir))
    loaded.tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return loaded


def session(chat_model, **kwargs) -> ChatSession:
    kwargs.setdefault("settings", GREEDY)
    return ChatSession(chat_model.model, chat_model.tokenizer, **kwargs)


def scripted(lines: list[str]):
    """A ``read_line`` that answers with ``lines`` in turn, then raises EOFError; records what it was asked."""
    remaining = list(lines)

    def read_line(prompt: str) -> str:
        if not remaining:
            raise EOFError
        return remaining.pop(0)

    read_line.remaining = remaining
    return read_line


def test_history_alternates_user_and_assistant_and_grows_each_turn(chat_model):
    chat = session(chat_model, system_prompt="You are a careful clinician.")
    replies = [chat.respond(text) for text in ("My ankle hurts.", "Since yesterday.", "Should I rest?")]
    assert [m["role"] for m in chat.history] == ["user", "assistant"] * 3
    assert [m["content"] for m in chat.history[0::2]] == ["My ankle hurts.", "Since yesterday.", "Should I rest?"]
    assert [m["content"] for m in chat.history[1::2]] == replies
    assert chat.messages()[0] == {"role": "system", "content": "You are a careful clinician."}
    assert chat.turns == 3


def test_streamed_chunks_concatenate_to_the_reply_which_matches_plain_generation(chat_model):
    chat = session(chat_model, settings=SamplingSettings(max_new_tokens=12, temperature=0.0))
    chunks: list[str] = []
    reply = chat.respond("Take the tablet with food.", on_token=chunks.append)
    assert len(chunks) > 1  # streamed piece by piece, not all at the end
    assert "".join(chunks) == reply
    # the same prompt through the batch engine (no streamer) gives the same text
    prompt = render_chat_prompt(chat_model.tokenizer, [{"role": "user", "content": "Take the tablet with food."}])
    [plain] = sample_texts(chat_model.model, chat_model.tokenizer, [prompt], chat.settings)
    assert plain == reply


def test_reply_streamer_holds_back_half_characters_and_stops_at_a_stop_token(chat_model):
    tok = chat_model.tokenizer
    ids = tok("ok 🩺", add_special_tokens=False)["input_ids"]
    assert len(ids) > 2  # the emoji is several byte tokens
    chunks: list[str] = []
    streamer = ReplyStreamer(tok, stop_ids=[tok.eos_token_id], on_text=chunks.append)
    streamer.put(torch.tensor([[5, 6, 7]]))  # the prompt: ignored
    for token in [*ids, tok.eos_token_id, ids[0]]:  # nothing after EOS counts
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert "".join(chunks) == streamer.text == "ok 🩺"
    assert not any("\ufffd" in chunk for chunk in chunks)


def test_reset_empties_the_history_but_keeps_the_system_prompt(chat_model):
    chat = session(chat_model, system_prompt="Be brief.")
    chat.respond("Hello")
    chat.reset()
    assert chat.history == []
    assert chat.messages() == [{"role": "system", "content": "Be brief."}]


def test_context_trimming_drops_the_oldest_exchange_keeps_system_and_newest_and_says_so_once(chat_model):
    chat = session(chat_model, system_prompt="Be brief.", max_context=4096)
    chat.respond("First question about fever.")
    chat.respond("Second question about cough.")
    u2, a2 = chat.history[2], chat.history[3]
    newest = {"role": "user", "content": "Third question."}
    # a budget that holds system + (u2, a2) + the newest turn, but not the first exchange as well
    fits = chat.prompt_tokens([*chat.messages()[:1], u2, a2, newest])
    assert chat.prompt_tokens([*chat.messages(), newest]) > fits
    chat.max_context = fits + GREEDY.max_new_tokens
    notices: list[str] = []
    chat.respond("Third question.", on_notice=notices.append)
    assert chat.history[:3] == [u2, a2, newest]
    assert len(chat.history) == 4 and chat.dropped_exchanges == 1
    assert chat.messages()[0] == {"role": "system", "content": "Be brief."}
    assert len(notices) == 1 and "context budget" in notices[0]
    # a later drop is silent: the user was told once
    fourth = {"role": "user", "content": "Fourth."}
    chat.max_context = chat.prompt_tokens([*chat.messages()[:1], fourth]) + GREEDY.max_new_tokens
    chat.respond("Fourth.", on_notice=notices.append)
    assert [m["content"] for m in chat.history[0::2]] == ["Fourth."]
    assert len(notices) == 1 and chat.dropped_exchanges == 3


def test_a_message_longer_than_the_budget_is_refused_and_not_kept(chat_model):
    chat = session(chat_model, max_context=GREEDY.max_new_tokens + 20)
    with pytest.raises(MedtuneError, match="--max-context"):
        chat.respond("word " * 60)
    assert chat.history == []


def test_same_seed_same_sampled_replies_temperature_zero_is_greedy(chat_model):
    hot = SamplingSettings(max_new_tokens=8, temperature=1.0, top_p=0.95)
    first = [session(chat_model, settings=hot, seed=7).respond("Hello doctor.") for _ in range(2)]
    other = session(chat_model, settings=hot, seed=8).respond("Hello doctor.")
    assert first[0] == first[1]
    assert other != first[0]  # 8 tokens drawn at T=1 from a random 500-token model: a clash is astronomically rare
    greedy = session(chat_model, settings=SamplingSettings(max_new_tokens=8, temperature=0.0), seed=1)
    greedy_other_seed = session(chat_model, settings=SamplingSettings(max_new_tokens=8, temperature=0.0), seed=2)
    assert greedy.respond("Hello doctor.") == greedy_other_seed.respond("Hello doctor.")


def test_repl_reset_then_exit_stops_reading(chat_model):
    chat = session(chat_model)
    read_line = scripted(["hello", "how are you", "/reset", "hi", "/exit", "never read"])
    written: list[str] = []
    run_repl(chat, read_line, written.append)
    output = "".join(written)
    assert read_line.remaining == ["never read"]
    assert [m["content"] for m in chat.history[0::2]] == ["hi"]  # the reset forgot the first two
    assert [m["role"] for m in chat.history] == ["user", "assistant"]
    assert "History cleared" in output
    assert output.count("model> ") == 3
    assert output.endswith("Bye.\n")


def test_repl_commands_help_system_unknown_and_end_of_input(chat_model):
    chat = session(chat_model)
    written: list[str] = []
    run_repl(chat, scripted(["/help", "/system Answer in one sentence.", "/system", "/frobnicate", ""]), written.append)
    output = "".join(written)
    assert HELP in output
    assert chat.system_prompt == "Answer in one sentence."
    assert "System prompt: Answer in one sentence." in output
    assert "Unknown command '/frobnicate'; /help lists the commands." in output
    assert chat.history == []  # commands and empty lines never reach the model
    assert output.endswith("Bye.\n")  # end of input (Ctrl-D) quits cleanly


def test_repl_ctrl_c_quits_cleanly_and_refused_messages_are_reported(chat_model):
    chat = session(chat_model, max_context=GREEDY.max_new_tokens + 20)

    lines = ["word " * 60]

    def read_line(prompt: str) -> str:
        if lines:
            return lines.pop()
        raise KeyboardInterrupt

    written: list[str] = []
    run_repl(chat, read_line, written.append)
    output = "".join(written)
    assert "error:" in output and "--max-context" in output
    assert output.endswith("Bye.\n")


def test_encoder_decoder_models_are_refused(chat_model):
    marian_like = SimpleNamespace(config=SimpleNamespace(is_encoder_decoder=True))
    with pytest.raises(MedtuneError, match="causal"):
        ChatSession(marian_like, chat_model.tokenizer)


def test_context_budget_must_leave_room_for_the_prompt(chat_model):
    with pytest.raises(MedtuneError, match="--max-context"):
        session(chat_model, max_context=GREEDY.max_new_tokens)
