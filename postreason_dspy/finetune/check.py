"""The post-training check: a LoRA adapter is done only when its replies keep the program's format.

The first LoRA adapter trained here opened all 200 of its post answers by repeating the input fields
(`[[ ## question ## ]] ...`), which no training loss showed. So after training and conversion, the
served GGUF LoRA (the weights the evaluation will use) answers a handful of held-out prompts
greedily: every reply must open with the program's first answer field marker (where the teacher's
reply to the same prompt opened) and end at the end of turn (the model stopped, not the token limit).
The result goes into OUT/finetune.json (`check`); `postreason local up --lora` warns about a
failed one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dspy
from dspy import lm15

from postreason_dspy.errors import PostReasonError
from postreason_dspy.finetune.data import Record
from postreason_dspy.local import server
from postreason_dspy.models import LOCAL, resolve_lm

CHECK_PROMPTS = 5
MAX_TOKENS = 1024  # distill's default per call: a reply that needs more has not stopped


def opening(record: Record) -> str:
    """The marker a reply to this prompt must open with: the teacher's reply up to its first answer value
    (its first line for a record without value spans)."""
    if record.values:
        return record.reply[: record.values[0][0]].strip()
    return record.reply.split("\n", 1)[0].strip()


def reply_problem(reply: str, finish_reason: str | None, expected: str) -> str | None:
    """What is wrong with one reply, or None."""
    if not reply.lstrip().startswith(expected):
        return f"does not open with {expected}"
    if finish_reason != "stop":
        return f"did not end at the end of turn (finish reason: {finish_reason or 'unknown'})"
    return None


@dataclass
class Reply:
    id: str
    expected: str
    reply: str
    finish_reason: str | None
    problem: str | None


@dataclass
class LoraCheck:
    """The check's verdict on one LoRA adapter, as OUT/finetune.json records it under `check`."""

    status: str  # "passed", "failed", or "not run"
    held_out: bool = True  # the prompts come from dev records the training never saw
    replies: tuple[Reply, ...] = ()
    reason: str | None = None  # why it was not run

    @property
    def failure(self) -> str | None:
        """One line for a failed check: the first offending reply."""
        bad = next((reply for reply in self.replies if reply.problem), None)
        if bad is None:
            return None
        failed = sum(1 for reply in self.replies if reply.problem)
        return (f"the LoRA adapter failed its check: {failed} of {len(self.replies)} greedy replies break the format; "
                f"the reply to {bad.id} {bad.problem}: {bad.reply[:160]!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failure": self.failure}


def prompts(train: list[Record], dev: list[Record], count: int = CHECK_PROMPTS) -> tuple[list[Record], bool]:
    """Up to `count` records to prompt with: held-out dev records, else (no dev split) training records."""
    return (dev[:count], True) if dev else (train[:count], False)


def check_lora(lm: dspy.LM, records: list[Record], *, held_out: bool = True,
               max_tokens: int = MAX_TOKENS) -> LoraCheck:
    """Greedy replies of `lm` (the served LoRA adapter) to the prompts of `records`, each checked."""
    replies = []
    for record in records:
        request = lm15.request_from_openai_chat({"model": lm.model, "messages": record.messages[:-1],
                                                 "temperature": 0.0, "max_tokens": max_tokens})
        response = lm(request)
        reason = getattr(response.finish_reason, "value", response.finish_reason)
        finish = None if reason is None else str(reason)
        expected = opening(record)
        replies.append(Reply(record.id, expected, response.text or "", finish,
                             reply_problem(response.text or "", finish, expected)))
    failed = any(reply.problem for reply in replies)
    return LoraCheck("failed" if failed else "passed", held_out, tuple(replies))


def check_served(out: Path, records: list[Record], *, held_out: bool, say: Callable[[str], None] = print
                 ) -> LoraCheck:
    """Serve OUT's LoRA adapter on the local server (unless it already runs), check it, stop what was started."""
    started = server.status() is None
    try:
        state = server.up(lora=out, say=say)
    except PostReasonError as exc:
        return LoraCheck("not run", held_out, reason=str(exc).splitlines()[0])
    try:
        return check_lora(resolve_lm(LOCAL, api_base=state.base_url, max_tokens=MAX_TOKENS), records,
                          held_out=held_out)
    finally:
        if started:
            server.down()
