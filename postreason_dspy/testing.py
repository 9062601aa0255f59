"""A scripted fake LM for testing post-reasoning programs offline.

    lm, engine = scripted_lm({"answer": "42", "rationale": "6 * 7 = 42"})
    with dspy.context(lm=lm):
        pred = PostReason("question -> answer", mode="answer_only")(question="6 * 7?")
    assert pred.answer == "42" and engine.requests[-1].stop == ("\\n[[",)

Unlike DSPy's DummyLM it behaves like a model that follows the prompt: it writes the output fields
in the order the prompt asks for them, in the active adapter's format (ChatAdapter, XMLAdapter or
postreason_dspy's PlainTextAdapter),
then applies `stop` and `max_tokens` the way an OpenAI-compatible server does. Every request is
recorded, and streams record how much text was produced before the consumer stopped reading.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.lm15 import (
    Message,
    Response,
    StreamDeltaEvent,
    StreamEndEvent,
    StreamStartEvent,
    TextDelta,
    TextPart,
    Usage,
)

# What the scripted model "knows": field name -> value, or a raw completion string (malformed output).
Script = Callable[[str], dict[str, str] | str]

CHAT_ORDER = re.compile(r"Respond with the corresponding output fields, starting with the field (.*?), and then ending")
XML_ORDER = re.compile(r"Respond with the corresponding output fields wrapped in XML tags (.*?)\.")
PLAIN_ORDER = re.compile(r"Respond with the output fields, each on a line that starts with its label: (.*?)\.$", re.M)
FIELD_NAME = re.compile(r"`(?:\[\[ ## (\w+) ## \]\]|<(\w+)>)`")
PLAIN_LABEL = re.compile(r"`([^`]+):`")
TOKEN = re.compile(r"\s*\S+")


def tokens(text: str) -> list[str]:
    """Whitespace-led word pieces: joining them gives back `text` (less trailing space)."""
    return TOKEN.findall(text)


@dataclass
class RecordedRequest:
    messages: list[dict[str, str]]
    stop: tuple[str, ...]
    max_tokens: int | None
    temperature: float | None

    @property
    def prompt(self) -> str:
        return "\n".join(m["content"] for m in self.messages)


@dataclass
class ScriptedEngine:
    """Sync engine. `script(user_message)` gives the values of the fields, or a raw completion."""

    script: Script
    requests: list[RecordedRequest] = field(default_factory=list)
    streamed_tokens: list[int] = field(default_factory=list)  # tokens emitted per stream before it ended
    stream_finished: list[bool] = field(default_factory=list)

    def _record(self, request: Any) -> RecordedRequest:
        messages = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
            messages.append({"role": "system", "content": system})
        messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
        config = request.config
        recorded = RecordedRequest(messages, tuple(config.stop or ()), config.max_tokens, config.temperature)
        self.requests.append(recorded)
        return recorded

    def _generate(self, recorded: RecordedRequest) -> tuple[str, str, int]:
        """(text, finish_reason, prompt_tokens) as a server would return them."""
        user = recorded.messages[-1]["content"]
        planned = self.script(user)
        text = planned if isinstance(planned, str) else render(user, planned)
        finish = "stop"
        for stop in recorded.stop:
            if stop in text:
                text = text[: text.index(stop)]
        pieces = tokens(text)
        if recorded.max_tokens is not None and len(pieces) > recorded.max_tokens:
            text, finish = "".join(pieces[: recorded.max_tokens]), "length"
        return text, finish, len(tokens(recorded.prompt))

    def complete(self, request: Any) -> Response:
        text, finish, prompt_tokens = self._generate(self._record(request))
        usage = Usage(input_tokens=prompt_tokens, output_tokens=len(tokens(text)))
        return Response(id=None, model="scripted", message=Message.assistant([TextPart(text)]),
                        finish_reason=finish, usage=usage)

    def stream(self, request: Any) -> Iterator[Any]:
        text, finish, prompt_tokens = self._generate(self._record(request))
        yield StreamStartEvent(id=None, model="scripted")
        pieces = tokens(text)
        for piece in pieces:
            yield StreamDeltaEvent(delta=TextDelta(text=piece, part_index=0))
        yield StreamEndEvent(finish_reason=finish, usage=Usage(input_tokens=prompt_tokens, output_tokens=len(pieces)))

    def close(self) -> None:
        pass


@dataclass
class AsyncScriptedEngine:
    """Async twin of ScriptedEngine; its streams yield control between tokens, like a network stream."""

    sync: ScriptedEngine

    async def complete(self, request: Any) -> Response:
        return self.sync.complete(request)

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        emitted, finished = 0, False
        try:
            for event in self.sync.stream(request):
                if isinstance(event, StreamDeltaEvent):
                    emitted += 1
                    await asyncio.sleep(0.005)
                yield event
            finished = True
        finally:
            self.sync.streamed_tokens.append(emitted)
            self.sync.stream_finished.append(finished)

    async def aclose(self) -> None:
        pass


def requested_order(user_message: str) -> list[str]:
    """The output field names in the order the prompt asks for them (plain-text labels mapped back to names)."""
    plain = PLAIN_ORDER.search(user_message)
    if plain:
        return ["_".join(label.lower().split()) for label in PLAIN_LABEL.findall(plain.group(1))]
    match = CHAT_ORDER.search(user_message) or XML_ORDER.search(user_message)
    if not match:
        raise AssertionError(f"prompt does not say which fields to write:\n{user_message}")
    return [chat or xml for chat, xml in FIELD_NAME.findall(match.group(1))]


def render(user_message: str, values: dict[str, str]) -> str:
    """Write `values` in the requested order and format, as an obedient model would."""
    order = requested_order(user_message)
    if PLAIN_ORDER.search(user_message):
        labels = PLAIN_LABEL.findall(PLAIN_ORDER.search(user_message).group(1))
        return "\n\n".join(f"{label}: {values[name]}" for label, name in zip(labels, order, strict=True))
    xml = XML_ORDER.search(user_message) is not None
    parts = []
    for name in order:
        value = values[name]
        parts.append(f"<{name}>\n{value}\n</{name}>" if xml else f"[[ ## {name} ## ]]\n{value}")
    text = "\n\n".join(parts)
    return text if xml else f"{text}\n\n[[ ## completed ## ]]"


def scripted_lm(script: Script | dict[str, str]) -> tuple[dspy.LM, ScriptedEngine]:
    """A dspy.LM backed by the scripted engine (cache off), and the engine to inspect."""
    if isinstance(script, dict):
        fixed = dict(script)
        script = lambda _user: fixed  # noqa: E731
    engine = ScriptedEngine(script)
    lm = dspy.LM("scripted/model", engine=engine, async_engine=AsyncScriptedEngine(engine), cache=False)
    return lm, engine
