"""`postreason finetune` end to end: data -> LoRA training -> GGUF adapter -> records in OUT and runs/<run-id>/.

OUT/finetune.json is what `postreason local up --lora OUT` reads (postreason_dspy.local.lora);
runs/<run-id>/ keeps the config (marked {"kind": "finetune"}, made before training, so a run id already
taken is refused at once), the summary and the loss curve beside the evaluation runs. The records held out
for the dev loss are listed there, and so is the post-training check (check.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from postreason_dspy.finetune.base import resolve_base
from postreason_dspy.finetune.check import CHECK_PROMPTS, LoraCheck, check_served, prompts
from postreason_dspy.finetune.convert import convert_adapter
from postreason_dspy.finetune.data import Record, data_file, data_hash, dev_split, read_records
from postreason_dspy.finetune.train import StepReport, TrainConfig, TrainResult, train
from postreason_dspy.io import atomic_path, atomic_write_json
from postreason_dspy.local.lora import RECORD, read_summary
from postreason_dspy.run_folder import FINETUNE, RunFolder, check_run_id, created


def finetune(
    data: str | Path,
    out: Path,
    base: str,
    config: TrainConfig,
    *,
    resume: bool = False,
    runs_dir: Path = Path("runs"),
    run_id: str | None = None,
    checks: int = CHECK_PROMPTS,
    on_step: Callable[[StepReport], None] = lambda report: None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, convert, record and check (greedy replies to `checks` held-out prompts through the served
    adapter; 0 skips it); returns the summary written to OUT/finetune.json."""
    config.check()
    path = data_file(data)
    records = read_records(path)
    sha256 = data_hash(path)
    model = resolve_base(base, say)
    run = record_folder(runs_dir, run_id, resume, {
        "created": created(), "command": "postreason finetune", "argv": sys.argv[1:], "out": str(out),
        "base": model.to_dict(), "config": asdict(config),
        "data": {"path": str(path), "sha256": sha256, "records": len(records)}})
    trained, dev = dev_split(records, config.dev_share)
    say(f"holding out {len(dev)} of {len(records)} records for the dev loss (--dev-share {config.dev_share:g})")
    result = train(model, trained, sha256, out, config, resume=resume, dev=dev, on_step=on_step, say=say)
    say("converting the LoRA adapter to GGUF with llama.cpp's converter")
    convert_adapter(out / "adapter", out / "base", out / "adapter.gguf", say)
    summary = {
        "run_id": run.run_id,
        "base": model.to_dict(),
        "config": asdict(config),
        "data": {"path": str(path), "sha256": sha256, "records": len(records), "used": result.records_used,
                 "skipped": result.records_skipped, "dev": dev_record(dev, config.dev_share, result.dev_records)},
        "adapter": "adapter",
        "adapter_gguf": "adapter.gguf",
        **_figures(result),
    }
    atomic_write_json(out / RECORD, summary)  # serving the adapter for the check reads it
    summary["check"] = run_check(out, trained, dev, checks, say)
    atomic_write_json(out / RECORD, summary)
    atomic_write_json(run.path / RECORD, summary)
    plot_losses(result.losses, run.path / "loss.png", f"{model.name}, loss on {config.loss}", result.dev.losses,
                result.dev.best_step)
    return summary


def record_folder(runs_dir: Path, run_id: str | None, resume: bool, document: dict[str, Any]) -> RunFolder:
    """runs/<run-id>/ for this fine-tuning: a new folder (a taken id is refused), or with `resume` the folder
    of the run it continues, named by `run_id`."""
    if resume and run_id:
        check_run_id(run_id)
        return RunFolder.ensure(runs_dir / run_id, FINETUNE, document)
    return RunFolder.create(runs_dir, FINETUNE, document, run_id,
                            resume_hint="continue that fine-tuning with --resume, or choose another --run-id")


def dev_record(dev: list[Record], share: float, used: int) -> dict[str, Any]:
    """How the dev records were chosen, and which they are."""
    return {"share": share, "rule": "sha256 of the record's example_id, read as a number in [0, 1), below share",
            "records": len(dev), "used": used, "example_ids": sorted({record.example_id for record in dev})}


def run_check(out: Path, trained: list[Record], dev: list[Record], count: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    """The post-training check of OUT's adapter, said in one line when it fails, as finetune.json records it."""
    if count == 0:
        check = LoraCheck("not run", reason="--check 0")
    else:
        chosen, held_out = prompts(trained, dev, count)
        say(f"checking the LoRA: greedy replies to {len(chosen)} {'held-out' if held_out else 'training'} prompts")
        check = check_served(out, chosen, held_out=held_out, say=say)
    if check.status == "failed":
        say(check.failure)
    elif check.status == "not run":
        say(f"the LoRA adapter was not checked ({check.reason}): check it with --check-only")
    return check.to_dict()


def recheck(data: str | Path, out: Path, count: int, runs_dir: Path, say: Callable[[str], None] = print
            ) -> dict[str, Any]:
    """Run the post-training check again on a finished OUT (e.g. one whose check could not run) and record it."""
    summary = read_summary(out)
    records = read_records(data_file(data))
    trained, dev = dev_split(records, summary["config"].get("dev_share", 0.0))
    summary["check"] = run_check(out, trained, dev, count, say)
    atomic_write_json(out / RECORD, summary)
    atomic_write_json(runs_dir / summary["run_id"] / RECORD, summary)
    return summary


def _figures(result: TrainResult) -> dict[str, Any]:
    return {
        "device": result.device,
        "steps": result.steps,
        "losses": result.losses,
        "dev_losses": result.dev.losses,
        "best_step": result.dev.best_step,
        "best_dev_loss": result.dev.best_loss,
        "stopped_early": result.stopped_early,
        "dev_seconds": round(result.dev_seconds, 2),
        "seconds": round(result.seconds, 2),
        "tokens": result.tokens,
        "loss_tokens": result.loss_tokens,
        "tokens_per_s": round(result.tokens / result.seconds, 2) if result.seconds else None,
    }


def plot_losses(losses: list[float], path: Path, title: str, dev: list[list[float]] | None = None,
                best_step: int | None = None) -> None:
    """The training loss per optimizer step as a PNG, with the dev loss where it was measured and the step kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(range(1, len(losses) + 1), losses, marker="o" if len(losses) < 30 else None, label="training")
    if dev:
        axis.plot([step for step, _ in dev], [loss for _, loss in dev], marker="s", label="dev (held out)")
        if best_step is not None:
            axis.axvline(best_step, color="grey", linestyle=":", label=f"kept: step {best_step}")
        axis.legend()
    axis.set(xlabel="optimizer step", ylabel="mean token loss", title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)
