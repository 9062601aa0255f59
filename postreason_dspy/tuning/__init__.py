"""Per-model tuning as a measured product: search on train/dev, measure on held-out test, recommend.

    run = TuneRun.create(Path("runs"), TuneConfig(models=("local",), benchmark="commonsense_qa"))
    summary = run.run()
"""

from postreason_dspy.tuning.recommend import recommend
from postreason_dspy.tuning.run import TuneConfig, TuneRun, is_tune_run, model_slug

__all__ = ["TuneConfig", "TuneRun", "is_tune_run", "model_slug", "recommend"]
