"""`postreason finetune DATA --out DIR`: post-reason tuning, a LoRA adapter trained on distilled records.

    postreason finetune runs/distill-gsm8k --out tuned/gsm8k --loss justification --max-steps 100
    postreason local up --lora tuned/gsm8k      # then --model local evaluates the tuned model

Needs the `train` extra (pip install -e '.[train]'); the base package never imports torch.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from postreason_dspy import interrupt
from postreason_dspy.cli.options import (
    add_no_progress_option,
    add_run_id_option,
    add_runs_dir_option,
    rerun_command,
)
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.check import CHECK_PROMPTS
from postreason_dspy.finetune.data import LOSS_MODES
from postreason_dspy.finetune.run import finetune, recheck
from postreason_dspy.finetune.train import StepReport, TrainConfig
from postreason_dspy.run_folder import new_run_id

TRAIN_MODULES = ("torch", "transformers", "peft", "gguf")
LOSS_HELP = ("justification: the justification's tokens only, the answer masked (the study's variant); "
             "all: the whole assistant turn; answer: the answer's tokens only (an ablation); format: the whole turn "
             "but the answer's values (field markers, justification, end of turn)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `finetune` command."""
    parser = subparsers.add_parser(
        "finetune",
        help="train a LoRA adapter on distilled post-reasoning records (needs the `train` extra)",
        description="LoRA fine-tuning on `postreason distill` records, with the loss on the records' spans; "
        "the LoRA adapter is converted to GGUF for `postreason local up --lora OUT`.",
    )
    parser.add_argument("data", metavar="DATA", help="a `postreason distill` folder or its train.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoints, the LoRA adapter and its GGUF")
    parser.add_argument("--base", default="local",
                        help="local (the local server's model), qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, a .gguf file "
                        "or a Hugging Face model folder (default: local)")
    parser.add_argument("--loss", default="justification", choices=LOSS_MODES, help=LOSS_HELP)
    parser.add_argument("--epochs", type=int, default=1, help="passes over the data (default: 1)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides --epochs)")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after the step that reaches this much training time (resumed runs included); "
                        "the LoRA adapter is then saved and converted as after the last step")
    parser.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (default: 2e-4)")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank; alpha is twice it (default: 8)")
    parser.add_argument("--max-seq-len", type=int, default=2048,
                        help="records longer than this many tokens are left out (default: 2048)")
    parser.add_argument("--batch-size", type=int, default=4, help="records per optimizer step (default: 4)")
    parser.add_argument("--save-every", type=int, default=10, help="checkpoint every N steps (default: 10)")
    parser.add_argument("--device", default="auto", help="auto (a GPU where there is one, else the CPU), cpu, cuda")
    parser.add_argument("--dev-share", type=float, default=0.1,
                        help="share of the examples held out (by a hash of the example id) for a dev loss; 0 for "
                        "none (default: 0.1)")
    parser.add_argument("--eval-every", type=int, default=10, help="measure the dev loss every N steps (default: 10)")
    parser.add_argument("--patience", type=int, default=3,
                        help="stop when this many dev-loss measurements in a row are not the lowest; 0 never stops "
                        "early (either way the LoRA adapter of the lowest is kept; default: 3)")
    parser.add_argument("--check", type=int, default=CHECK_PROMPTS, metavar="N",
                        help="after training, serve the LoRA adapter and check that its greedy replies to N held-out "
                        f"prompts keep the reply format; 0 skips it (default: {CHECK_PROMPTS})")
    parser.add_argument("--check-only", action="store_true",
                        help="do not train: run the check again on the finished LoRA adapter in --out")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    add_runs_dir_option(parser)
    add_run_id_option(parser)
    add_no_progress_option(parser)
    parser.set_defaults(func=run)


def check_train_extra() -> None:
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"`postreason finetune` needs the train extra ({', '.join(missing)} missing): pip install -e '.[train]'"
        )


def run(args: argparse.Namespace) -> int:
    check_train_extra()
    config = TrainConfig(
        loss=args.loss, epochs=args.epochs, lr=args.lr, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        max_steps=args.max_steps, max_minutes=args.max_minutes, max_seq_len=args.max_seq_len,
        batch_size=args.batch_size, save_every=args.save_every, device=args.device, dev_share=args.dev_share,
        eval_every=args.eval_every, patience=args.patience or None,
    )
    config.check()
    console = Console()
    say = lambda text: console.print(f"[dim]{text}[/]", highlight=False)  # noqa: E731
    if args.check_only:
        return report_check(console, recheck(args.data, args.out, args.check, args.runs_dir, say))
    progress = Progress(
        TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} tok/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=args.no_progress,
    )
    task = None

    def on_step(report: StepReport) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task("train", total=report.total, completed=report.step - 1, loss="-", speed="-")
        progress.update(task, completed=report.step, loss=f"{report.loss:.4f}", speed=f"{report.tokens_per_s:.0f}")
        dev = "" if report.dev_loss is None else f"  dev loss {report.dev_loss:.4f}"
        if args.no_progress or dev:
            console.print(f"step {report.step}/{report.total}  loss {report.loss:.4f}{dev}  "
                          f"{report.tokens_per_s:.0f} tok/s", highlight=False)

    args.run_id = args.run_id or new_run_id()  # named now, so a resume continues into the same runs/ folder
    with progress, interrupt.resume_with(rerun_command(args, "--resume", "--run-id", args.run_id)):
        summary = finetune(
            args.data, args.out, args.base, config, resume=args.resume, runs_dir=args.runs_dir, run_id=args.run_id,
            checks=args.check, on_step=on_step, say=say,
        )
    console.print(
        f"[green]done[/] {summary['steps']} steps, loss {summary['losses'][0]:.4f} -> {summary['losses'][-1]:.4f}, "
        f"{summary['seconds']:.0f} s, {summary['tokens_per_s']} tok/s; LoRA adapter {args.out / 'adapter.gguf'}\n"
        f"serve it: postreason local up --lora {args.out}   (record: {args.runs_dir / summary['run_id']})",
        highlight=False, soft_wrap=True,
    )
    return report_check(console, summary)


def report_check(console: Console, summary: dict) -> int:
    """The post-training check's outcome in one line; exit code 1 when the LoRA adapter failed it."""
    check = summary["check"]
    if check["status"] == "failed":
        console.print(f"[bold red]FAILED[/] {check['failure']}", highlight=False, soft_wrap=True)
        return 1
    if check["status"] == "passed":
        where = "held-out" if check["held_out"] else "training"
        console.print(f"[green]check passed[/]: {len(check['replies'])} greedy replies to {where} prompts keep the "
                      "reply format", highlight=False)
    return 0
