"""capitals.py: a benchmark of your own, read from a local JSONL file."""

import dspy

from postreason_dspy import make_strategy, register_benchmark
from postreason_dspy.benchmarks import Benchmark, Item


class Capital(dspy.Signature):
    """Name the capital city of the country."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the city's name only")


class CapitalQuiz(dspy.Module):
    """The task program; `strategy` is any strategy name (direct, post, post_full, cot or your own)."""

    def __init__(self, strategy: str = "post", **config):
        super().__init__()
        self.respond = make_strategy(strategy, Capital, **config)

    def forward(self, question: str) -> dspy.Prediction:
        return self.respond(question=question)


class CityScorer:
    """Reads the answer field's text; decides when it matches the gold answer."""

    def extract(self, text: str | None, example=None) -> str | None:
        answer = (text or "").strip().rstrip(".").lower()
        return answer or None

    def matches(self, answer: str, gold: str) -> bool:
        return answer == gold.strip().lower()


def normalize(row: dict) -> Item:
    """One row of the file as an item (a KeyError or ValueError reports the row as malformed)."""
    return Item(question=f"What is the capital of {row['country']}?", answer=row["capital"])


register_benchmark(Benchmark(
    name="capitals",
    family="free_form",
    title="Capital cities",
    schema="country; capital; optional split (train, dev or test)",
    normalize=normalize,
    scorer=CityScorer(),
    program_factory=CapitalQuiz,
    split_key="capitals",
))
