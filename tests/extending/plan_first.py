"""plan_first.py: a strategy of your own, a one-line plan and then the answer, in one LM call."""

import dspy

from postreason_dspy import StrictPredict, register_strategy


class PlanFirst(dspy.Module):
    def __init__(self, signature, *, on_parse_error="raise", **config):
        super().__init__()
        planned = dspy.ensure_signature(signature).prepend(
            "plan", dspy.OutputField(desc="one line: how you will find the answer"), type_=str
        )
        self.predict = StrictPredict(planned, on_parse_error=on_parse_error, **config)

    def forward(self, **inputs) -> dspy.Prediction:
        return self.predict(**inputs)


register_strategy("plan_first", PlanFirst)
