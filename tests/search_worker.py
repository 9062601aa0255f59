"""A search worker in a process of its own, for the tests that kill one mid-trial (test_optimizer, test_distributed).

Run as a script: the scripted model is right when told an expert reviews the justification (or on a training
question), and after `slow_after` requests it marks `run_dir/mid-trial` and hangs, to be killed there."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def start_worker(
    run_dir: Path, trials: int, slow_after: int, storage: str = "", study: str = "", grace_period: float = 1.0
) -> subprocess.Popen:
    """This file as a worker process searching `trials` trials (slow_after=-1: it never hangs)."""
    args = [run_dir, storage, study, trials, slow_after, grace_period]
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _work(run_dir: str, storage: str, study: str, trials: int, slow_after: int, grace_period: float) -> None:
    import dspy

    from postreason_dspy import PostReason
    from postreason_dspy.optimizers.post_reason_search import PostReasonSearch
    from postreason_dspy.testing import scripted_lm

    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        system = engine.requests[-1].messages[0]["content"]
        if len(engine.requests) == slow_after:
            Path(run_dir, "mid-trial").write_text("x")
            time.sleep(600)
        right = "An expert will review" in system or "train" in user.split("[[ ## question ## ]]")[-1]
        return {"answer": "right" if right else "wrong", "rationale": "since it is so"}

    engine.script = script

    def exact(example: dspy.Example, pred: dspy.Prediction, trace: object = None) -> bool:
        return pred.answer == example.answer

    def examples(n: int, prefix: str) -> list[dspy.Example]:
        return [dspy.Example(id=f"{prefix}{i}", question=f"{prefix}{i}", answer="right").with_inputs("question")
                for i in range(n)]

    search = PostReasonSearch(exact, num_trials=trials, num_demo_sets=2, max_bootstrapped_demos=1, run_dir=run_dir,
                              storage=storage or None, study_name=study or None, heartbeat_interval=0.2,
                              grace_period=grace_period)
    with dspy.context(lm=lm):
        best = search.compile(PostReason("question -> answer", mode="answer_only"),
                              trainset=examples(4, "train"), valset=examples(3, "d"))
    print("BEST", best.score)


if __name__ == "__main__":
    run_dir, storage, study, trials, slow_after, grace = sys.argv[1:7]
    _work(run_dir, storage, study, int(trials), int(slow_after), float(grace))
