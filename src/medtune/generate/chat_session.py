"""An interactive multi-turn chat with a model: the history, the context budget and the REPL commands.

``ChatSession`` holds the conversation and answers one user turn at a time, streaming the reply's text
as it is generated. ``run_repl`` is the terminal loop around it; it takes its input and output as
functions so tests (and other front ends) can drive it without a terminal.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from transformers.generation.streamers import BaseStreamer

from medtune.data.chat_template import ensure_chat_template, render_chat_prompt, stop_token_ids
from medtune.errors import MedtuneError
from medtune.generate.engine import SamplingSettings, derive_seed, sample_texts

DEFAULT_CONTEXT = 2048  # used when the model config does not say how many positions it has

HELP = """Commands:
  /help           show this list
  /reset          forget the conversation (the system prompt is kept)
  /system TEXT    set the system prompt (/system alone shows it)
  /exit           leave (also /quit, Ctrl-D or Ctrl-C)
Anything else is sent to the model as your next message."""


class ReplyStreamer(BaseStreamer):
    """Turns the token ids ``generate`` pushes into text chunks for a callback, as they arrive.

    Decodes the whole reply so far at each step and passes on only the new characters, holding back
    a half-decoded multi-byte character. Stops listening at the first stop token (EOS / end of turn).
    ``text`` is everything passed on, i.e. the reply as the user saw it.
    """

    def __init__(self, tokenizer, stop_ids: Sequence[int], on_text: Callable[[str], None]):
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids)
        self.on_text = on_text
        self.ids: list[int] = []
        self.text = ""
        self._prompt_seen = False
        self._stopped = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True  # generate() first pushes the prompt itself
            return
        for token in value.reshape(-1).tolist():
            if self._stopped or token in self.stop_ids:
                self._stopped = True
                break
            self.ids.append(token)
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return  # the rest of a multi-byte character comes with the next token
        if len(text) > len(self.text) and text.startswith(self.text):
            chunk, self.text = text[len(self.text) :], text
            self.on_text(chunk)


class ChatSession:
    """A conversation with a causal language model, rendered with its chat template every turn.

    Args:
        model, tokenizer: a causal LM and its tokenizer (one without a chat template gets its family's).
        settings: reply length, temperature (0 = greedy), top-p; the template's end-of-turn tokens are
            added to its stop tokens.
        system_prompt: an optional system turn kept across ``reset``.
        seed: makes the replies reproducible (turn ``n`` samples with a seed derived from ``(seed, n)``);
            ``None`` picks a random one.
        max_context: tokens the prompt plus the reply may use; default: the model's position limit.
    Raises:
        MedtuneError: an encoder-decoder model, a tokenizer without a usable template, or a context
            budget no larger than the reply length.
    """

    def __init__(
        self,
        model,
        tokenizer,
        settings: SamplingSettings | None = None,
        system_prompt: str | None = None,
        seed: int | None = None,
        max_context: int | None = None,
    ):
        if getattr(model.config, "is_encoder_decoder", False):
            raise MedtuneError(
                "medtune chat needs a causal (decoder-only) language model; this one is an encoder-decoder "
                "(translation) model. Use gemma-3-270m, a chat model or a medtune chat/SFT training output."
            )
        ensure_chat_template(tokenizer)
        settings = settings or SamplingSettings(temperature=0.7, top_p=0.9)
        self.settings = settings.with_stop_tokens(stop_token_ids(tokenizer))
        self.model = model
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt or None
        self.seed = random.randrange(2**31) if seed is None else seed
        if max_context is None:
            max_context = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT
        self.max_context = max_context
        if self.max_context <= self.settings.max_new_tokens:
            raise MedtuneError(
                f"--max-context ({self.max_context}) must be larger than --max-new-tokens "
                f"({self.settings.max_new_tokens}): the prompt and the reply share the context."
            )
        self.history: list[dict[str, str]] = []
        self.turns = 0  # replies generated so far; numbers the per-turn seeds
        self.dropped_exchanges = 0
        self._trim_notice_given = False

    @property
    def prompt_budget(self) -> int:
        """Tokens the rendered conversation may take, leaving room for a full reply."""
        return self.max_context - self.settings.max_new_tokens

    def messages(self) -> list[dict[str, str]]:
        """The conversation as the template sees it: the system turn (if any), then the history."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + self.history

    def reset(self) -> None:
        """Forget every user and assistant turn; the system prompt stays."""
        self.history.clear()

    def set_system_prompt(self, text: str | None) -> None:
        """Replace the system prompt (``None`` or empty removes it); the history stays."""
        self.system_prompt = text or None

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """Length in tokens of ``messages`` rendered with the generation prompt."""
        text = render_chat_prompt(self.tokenizer, messages, add_generation_prompt=True)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def respond(
        self,
        user_text: str,
        on_token: Callable[[str], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> str:
        """Add a user turn, generate the assistant's reply (streamed to ``on_token``) and record it.

        Args:
            user_text: the user's message.
            on_token: receives the reply's text piece by piece as it is generated; the pieces joined
                are exactly the returned reply.
            on_notice: receives a one-line message the first time old turns are dropped to fit the context.
        Returns:
            The reply, without the end-of-turn marker.
        Raises:
            MedtuneError: the system prompt plus this message alone exceed the context budget (the
                message is then not added to the history).
        """
        system = self.messages()[: 1 if self.system_prompt else 0]
        newest = {"role": "user", "content": user_text}
        needed = self.prompt_tokens([*system, newest])
        if needed > self.prompt_budget:
            raise MedtuneError(
                f"This message (with the system prompt) is {needed} tokens, but the prompt may use only "
                f"{self.prompt_budget} (--max-context {self.max_context} minus --max-new-tokens "
                f"{self.settings.max_new_tokens}). Shorten it, or raise --max-context / lower --max-new-tokens."
            )
        self.history.append(newest)
        self._drop_oldest_exchanges(on_notice)
        prompt = render_chat_prompt(self.tokenizer, self.messages(), add_generation_prompt=True)
        streamer = ReplyStreamer(self.tokenizer, self.settings.stop_token_ids, on_token or (lambda _chunk: None))
        seed = derive_seed(self.seed, "turn", self.turns)
        try:
            sample_texts(self.model, self.tokenizer, [prompt], self.settings, [seed], batch_size=1, streamer=streamer)
        except BaseException:
            self.history.pop()  # an interrupted turn leaves no unanswered message behind
            raise
        self.turns += 1
        self.history.append({"role": "assistant", "content": streamer.text})
        return streamer.text

    def _drop_oldest_exchanges(self, on_notice: Callable[[str], None] | None) -> None:
        """Drop (user, assistant) pairs from the front until the prompt fits; never the newest user turn."""
        dropped = 0
        while len(self.history) > 1 and self.prompt_tokens(self.messages()) > self.prompt_budget:
            del self.history[:2]
            dropped += 1
        self.dropped_exchanges += dropped
        if dropped and not self._trim_notice_given:
            self._trim_notice_given = True
            if on_notice is not None:
                on_notice(
                    f"The conversation outgrew the context budget ({self.prompt_budget} prompt tokens); the oldest "
                    "exchanges are being dropped (the system prompt is always kept). This is said only once."
                )


def run_repl(session: ChatSession, read_line: Callable[[str], str], write: Callable[[str], None]) -> None:
    """The interactive loop: read a line, run a command or answer it with streamed text, repeat.

    Args:
        session: the conversation.
        read_line: like ``input``: shows a prompt, returns one line, raises ``EOFError`` at the end.
        write: shows text as is (no newline added); called once per streamed chunk.
    Ends at ``/exit``, ``/quit``, end of input or Ctrl-C (``KeyboardInterrupt``), always cleanly.
    """
    write("Type /help for commands, /exit to leave.\n")
    try:
        while True:
            try:
                line = read_line("you> ").strip()
            except EOFError:
                write("\n")
                break
            if not line:
                continue
            if line.startswith("/"):
                if not _run_command(session, line, write):
                    break
                continue
            _answer(session, line, write)
    except KeyboardInterrupt:
        write("\n")
    write("Bye.\n")


def _answer(session: ChatSession, line: str, write: Callable[[str], None]) -> None:
    started = False

    def on_token(chunk: str) -> None:
        nonlocal started
        if not started:
            write("model> ")
            started = True
        write(chunk)

    try:
        session.respond(line, on_token=on_token, on_notice=lambda message: write(f"[{message}]\n"))
    except MedtuneError as exc:
        write(f"error: {exc}\n")
        return
    write("\n" if started else "model> (empty reply)\n")


def _run_command(session: ChatSession, line: str, write: Callable[[str], None]) -> bool:
    """Run one slash command; ``False`` means leave the loop."""
    command, _, argument = line.partition(" ")
    argument = argument.strip()
    if command in ("/exit", "/quit"):
        return False
    if command == "/help":
        write(HELP + "\n")
    elif command == "/reset":
        session.reset()
        kept = " (the system prompt is kept)" if session.system_prompt else ""
        write(f"History cleared{kept}.\n")
    elif command == "/system":
        if argument:
            session.set_system_prompt(argument)
            write("System prompt set; it applies from the next reply.\n")
        else:
            write(f"System prompt: {session.system_prompt or '(none)'}\n")
    else:
        write(f"Unknown command {command!r}; /help lists the commands.\n")
    return True
