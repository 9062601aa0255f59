"""`postreason finetune` end to end: data -> LoRA training -> GGUF adapter -> records in OUT and runs/<run-id>/.

OUT/finetune.json is what `postreason local up --adapter OUT` reads (postreason_dspy.local.adapter);
runs/<run-id>/ keeps the config, the summary and the loss curve beside the evaluation runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from postreason_dspy.evaluation.records import new_run_id
from postreason_dspy.finetune.base import resolve_base
from postreason_dspy.finetune.convert import convert_adapter
from postreason_dspy.finetune.data import data_file, data_hash, read_records
from postreason_dspy.finetune.train import StepReport, TrainConfig, TrainResult, train
from postreason_dspy.io import atomic_path, atomic_write_json
from postreason_dspy.local.adapter import RECORD


def finetune(
    data: str | Path,
    out: Path,
    base: str,
    config: TrainConfig,
    *,
    resume: bool = False,
    runs_dir: Path = Path("runs"),
    run_id: str | None = None,
    on_step: Callable[[StepReport], None] = lambda report: None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, convert and record; returns the summary written to OUT/finetune.json."""
    config.check()
    path = data_file(data)
    records = read_records(path)
    sha256 = data_hash(path)
    model = resolve_base(base, say)
    result = train(model, records, sha256, out, config, resume=resume, on_step=on_step, say=say)
    say("converting the adapter to GGUF with llama.cpp's converter")
    convert_adapter(out / "adapter", out / "base", out / "adapter.gguf", say)
    run_id = run_id or new_run_id()
    summary = {
        "run_id": run_id,
        "base": model.to_dict(),
        "config": asdict(config),
        "data": {"path": str(path), "sha256": sha256, "records": len(records), "used": result.records_used,
                 "skipped": result.records_skipped},
        "adapter": "adapter",
        "adapter_gguf": "adapter.gguf",
        **_figures(result),
    }
    atomic_write_json(out / RECORD, summary)
    run = runs_dir / run_id
    atomic_write_json(run / "config.json", {"command": "postreason finetune", "argv": sys.argv[1:], "out": str(out),
                                            "base": model.to_dict(), "config": asdict(config),
                                            "data": summary["data"]})
    atomic_write_json(run / "finetune.json", summary)
    plot_losses(result.losses, run / "loss.png", f"{model.name}, loss on {config.loss}")
    return summary


def _figures(result: TrainResult) -> dict[str, Any]:
    return {
        "device": result.device,
        "steps": result.steps,
        "losses": result.losses,
        "seconds": round(result.seconds, 2),
        "tokens": result.tokens,
        "loss_tokens": result.loss_tokens,
        "tokens_per_s": round(result.tokens / result.seconds, 2) if result.seconds else None,
    }


def plot_losses(losses: list[float], path: Path, title: str) -> None:
    """The training loss per optimizer step as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(range(1, len(losses) + 1), losses, marker="o" if len(losses) < 30 else None)
    axis.set(xlabel="optimizer step", ylabel="mean token loss", title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)
