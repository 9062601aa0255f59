"""`postreason finetune DATA --out DIR`: post-reason tuning, a LoRA adapter trained on distilled records.

    postreason finetune runs/distill-gsm8k --out tuned/gsm8k --loss justification --max-steps 100
    postreason local up --adapter tuned/gsm8k      # then --model local evaluates the tuned model

Needs the `train` extra (pip install -e '.[train]'); the base package never imports torch.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from postreason_dspy.cli.options import add_no_progress_option, add_run_id_option, add_runs_dir_option
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.finetune.run import finetune
from postreason_dspy.finetune.train import StepReport, TrainConfig

TRAIN_MODULES = ("torch", "transformers", "peft", "gguf")
LOSS_HELP = ("justification: the justification's tokens only, the answer masked (the study's variant); "
             "all: the whole assistant turn; answer: the answer's tokens only (an ablation)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `finetune` command."""
    parser = subparsers.add_parser(
        "finetune",
        help="train a LoRA adapter on distilled post-reasoning records (needs the `train` extra)",
        description="LoRA fine-tuning on `postreason distill` records, with the loss on the records' spans; "
        "the adapter is converted to GGUF for `postreason local up --adapter OUT`.",
    )
    parser.add_argument("data", metavar="DATA", help="a `postreason distill` folder or its train.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoints, the adapter and its GGUF")
    parser.add_argument("--base", default="local",
                        help="local (the local server's model), qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, a .gguf file "
                        "or a Hugging Face model folder (default: local)")
    parser.add_argument("--loss", default="justification", choices=("justification", "all", "answer"), help=LOSS_HELP)
    parser.add_argument("--epochs", type=int, default=1, help="passes over the data (default: 1)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides --epochs)")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after the step that reaches this much training time (resumed runs included); "
                        "the adapter is then saved and converted as after the last step")
    parser.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (default: 2e-4)")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank; alpha is twice it (default: 8)")
    parser.add_argument("--max-seq-len", type=int, default=2048,
                        help="records longer than this many tokens are left out (default: 2048)")
    parser.add_argument("--batch-size", type=int, default=4, help="records per optimizer step (default: 4)")
    parser.add_argument("--save-every", type=int, default=10, help="checkpoint every N steps (default: 10)")
    parser.add_argument("--device", default="auto", help="auto (a GPU where there is one, else the CPU), cpu, cuda")
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
        batch_size=args.batch_size, save_every=args.save_every, device=args.device,
    )
    config.check()
    console = Console()
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
        if args.no_progress:
            console.print(f"step {report.step}/{report.total}  loss {report.loss:.4f}  "
                          f"{report.tokens_per_s:.0f} tok/s", highlight=False)

    with progress:
        summary = finetune(
            args.data, args.out, args.base, config, resume=args.resume, runs_dir=args.runs_dir, run_id=args.run_id,
            on_step=on_step, say=lambda text: console.print(f"[dim]{text}[/]", highlight=False),
        )
    console.print(
        f"[green]done[/] {summary['steps']} steps, loss {summary['losses'][0]:.4f} -> {summary['losses'][-1]:.4f}, "
        f"{summary['seconds']:.0f} s, {summary['tokens_per_s']} tok/s; adapter {args.out / 'adapter.gguf'}\n"
        f"serve it: postreason local up --adapter {args.out}   (record: {args.runs_dir / summary['run_id']})",
        highlight=False, soft_wrap=True,
    )
    return 0
