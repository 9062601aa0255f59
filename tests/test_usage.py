"""The one LM-usage counter, on the scripted model: every call counted (failed ones too), answered ones kept."""

from __future__ import annotations

import threading

import dspy
import pytest

from postreason_dspy.testing import scripted_lm, tokens
from postreason_dspy.usage import Usage, counted_copy, counting


def test_counting_counts_every_call_and_its_tokens_as_the_server_reported_them():
    lm, engine = scripted_lm({"answer": "forty two"})
    program, usage = dspy.Predict("question -> answer"), Usage()
    with dspy.context(lm=lm), counting(usage):
        for number in range(3):
            program(question=f"what is {number}?")
    program(question="not counted", lm=lm)  # outside the block
    assert usage.calls == 3 and len(engine.requests) == 4
    assert usage.input_tokens == sum(len(tokens(request.prompt)) for request in engine.requests[:3])
    assert usage.output_tokens == 3 * len(tokens("[[ ## answer ## ]]\nforty two\n\n[[ ## completed ## ]]"))


def test_a_failed_call_costs_a_call_but_is_not_kept_as_answered():
    def fails(user: str) -> dict[str, str]:
        raise ConnectionError("the server is gone")

    lm, _ = scripted_lm(fails)
    copy, counter = counted_copy(lm)
    with dspy.context(lm=copy), pytest.raises(Exception, match="the server is gone"):
        dspy.Predict("question -> answer")(question="q")
    assert counter.usage.calls == 1 and counter.calls == []


def test_each_counted_copy_keeps_only_its_own_calls_under_threads():
    lm, _ = scripted_lm(lambda user: {"answer": user.rsplit("question ## ]]\n", 1)[-1].split()[0]})
    counters, barrier = {}, threading.Barrier(4)

    def ask(word: str) -> None:
        copy, counters[word] = counted_copy(lm)
        barrier.wait()
        with dspy.context(lm=copy):
            for _ in range(2):
                dspy.Predict("question -> answer")(question=word)

    threads = [threading.Thread(target=ask, args=(word,)) for word in ("red", "green", "blue", "gold")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for word, counter in counters.items():
        assert counter.usage.calls == 2 and [call.finish_reason for call in counter.calls] == ["stop", "stop"]
        assert all(f"## answer ## ]]\n{word}\n" in call.completion for call in counter.calls)
        assert all(call.prompt_tokens and call.completion_tokens and call.latency_s > 0 for call in counter.calls)
    assert lm.history == []  # the copies' calls stay on the copies
