"""scripts/measure_finetune.py with its `postreason` commands simulated: the steps run in an order that
never serves and trains at once, evaluate base and adapter on the same questions, skip what is done, and
the summary pairs the four arms by example id."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from postreason_dspy.evaluation.records import ExampleRecord, RunStore

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [f"q{i}" for i in range(20)]
# Which questions each arm gets right: tuned post wins 8 questions over base direct and loses none.
RIGHT = {("base", "direct"): set(QUESTIONS[:5]), ("base", "post"): set(QUESTIONS[:6]),
         ("tuned", "direct"): set(QUESTIONS[:5]), ("tuned", "post"): set(QUESTIONS[:13])}


def load_script():
    spec = importlib.util.spec_from_file_location("measure_finetune", ROOT / "scripts" / "measure_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCli:
    """Plays the commands the script runs: records each, and writes what the real command would leave."""

    def __init__(self, runs: Path):
        self.runs, self.commands, self.served, self.failed, self.check = runs, [], None, 0, {"status": "passed"}

    def __call__(self, *args: str, check: bool = True) -> None:
        self.commands.append(args)
        if args[:2] == ("local", "down"):
            self.served = None
        elif args[:2] == ("local", "up"):
            self.served = "tuned" if "--adapter" in args else "base"
        elif args[0] == "distill":
            assert self.served == "base"
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True)
            (out / "summary.json").write_text(json.dumps({"kept": 3, "rationalized": 9, "failed": self.failed,
                                                          "records": 12}))
        elif args[0] == "finetune":
            assert self.served is None, "training while a server runs"
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True)
            (out / "finetune.json").write_text(json.dumps({
                "device": "cpu", "steps": 9, "seconds": 600.0, "tokens": 12000, "loss_tokens": 4000,
                "tokens_per_s": 20.0, "losses": [1.5, 1.1], "data": {"used": 12, "dev": {"used": 2}},
                "config": {"loss": "justification"}, "dev_losses": [[5, 1.3], [9, 1.2]], "best_step": 9,
                "best_dev_loss": 1.2, "stopped_early": False, "check": self.check}))
        elif args[0] == "eval":
            self.evaluate(args)

    def evaluate(self, args: tuple[str, ...]) -> None:
        run_id = args[args.index("--run-id") + 1]
        assert run_id.endswith(self.served)
        assert args[args.index("--strategy") + 1] == "direct,post"
        store = RunStore.create(self.runs, {"config": {}}, run_id)
        for strategy in ("direct", "post"):
            for qid in QUESTIONS:
                store.append(ExampleRecord(model="local", benchmark="commonsense_qa", strategy=strategy, id=qid,
                                           status="ok", correct=qid in RIGHT[(self.served, strategy)],
                                           completion_tokens=1, latency_s=0.5))
        store.write_summary({"complete": True})


@pytest.fixture
def run(tmp_path, monkeypatch):
    script = load_script()
    cli = FakeCli(tmp_path / "runs")
    monkeypatch.setattr(script, "postreason", cli)
    argv = ["--run-id", "ft", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
            "--limit", "20"]
    (tmp_path / "results").mkdir()
    return script, cli, argv, tmp_path


def test_steps_run_in_order_and_the_summary_pairs_the_arms(run):
    script, cli, argv, tmp_path = run
    assert script.main(argv) == 0
    names = [" ".join(command[:2]) if command[0] == "local" else command[0] for command in cli.commands]
    assert names.index("distill") < names.index("finetune") < names.index("eval")
    assert cli.commands[-1] == ("local", "down")
    program = json.loads((tmp_path / "runs" / "ft" / "program.json").read_text())
    assert program["benchmark"] == "commonsense_qa" and program["strategy"] == "post"

    result = json.loads((tmp_path / "results" / "finetune-qwen2.5-coder-0.5b.json").read_text())
    accuracy = {f"{arm['model']} {arm['strategy']}": arm["accuracy"] for arm in result["arms"]}
    assert accuracy == {"base direct": 0.25, "base post": 0.3, "tuned post": 0.65, "tuned direct": 0.25}
    first = result["pairs"][0]
    assert (first["treatment"], first["baseline"], first["pairs"]) == ("tuned post", "base direct", 20)
    assert (first["treatment_only"], first["baseline_only"]) == (8, 0) and first["p_value"] < 0.01
    assert result["training"]["tokens_per_s"] == 20.0 and result["training"]["loss_last"] == 1.1
    assert result["distill"]["rationalized"] == 9
    report = (tmp_path / "results" / "finetune-qwen2.5-coder-0.5b.md").read_text()
    assert "| tuned post vs base direct | 20 | +40.0 |" in report


def test_a_second_run_reuses_every_finished_step(run):
    script, cli, argv, _ = run
    script.main(argv)
    cli.commands.clear()
    assert script.main(argv) == 0
    assert cli.commands == [("local", "down")]


def test_a_distillation_with_failed_examples_goes_on_to_training(run):
    script, cli, argv, _ = run
    cli.failed = 1  # e.g. an answer that names no option, the same on every retry
    assert script.main(argv) == 0
    assert [command[0] for command in cli.commands].count("distill") == 1
    assert any(command[0] == "finetune" for command in cli.commands)


def test_a_retraining_reuses_the_earlier_runs_data_and_base_evaluation(run):
    script, cli, argv, tmp_path = run
    script.main(argv)
    cli.commands.clear()
    retrain = [*argv[:argv.index("--run-id")], "--run-id", "ft2", "--reuse", "ft", *argv[argv.index("--run-id") + 2:]]
    assert script.main(retrain) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["finetune", "eval"]
    assert cli.commands[-2][cli.commands[-2].index("--run-id") + 1] == "ft2-tuned"
    result = json.loads((tmp_path / "results" / "finetune-qwen2.5-coder-0.5b.json").read_text())
    assert result["runs"]["base"] == "ft-base" and result["distill"]["rationalized"] == 9


def test_reuse_of_an_unfinished_run_is_refused(run):
    script, _, argv, _ = run
    with pytest.raises(SystemExit, match="not finished"):
        script.main([*argv, "--reuse", "nothing-here"])


def test_a_new_distillation_can_reuse_the_base_evaluation_alone(run):
    script, cli, argv, tmp_path = run
    script.main(argv)
    cli.commands.clear()
    at = argv.index("--run-id")
    redistill = [*argv[:at], "--run-id", "ft3", "--reuse-base", "ft", *argv[at + 2:]]
    assert script.main(redistill) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["distill", "finetune", "eval"]
    result = json.loads((tmp_path / "results" / "finetune-qwen2.5-coder-0.5b.json").read_text())
    assert result["runs"]["base"] == "ft-base"


def test_an_adapter_that_failed_its_check_is_not_evaluated(run):
    script, cli, argv, _ = run
    cli.check = {"status": "failed", "failure": "the adapter failed its check: 1 of 5 greedy replies break the format"}
    with pytest.raises(SystemExit, match="1 of 5 greedy replies break the format"):
        script.main([*argv, "--loss", "format"])
    finetune = next(command for command in cli.commands if command[0] == "finetune")
    assert finetune[finetune.index("--loss") + 1] == "format"
    assert not any(command[0] == "eval" for command in cli.commands)


def test_the_report_states_the_dev_loss_and_the_check(run):
    script, _, argv, tmp_path = run
    script.main(argv)
    report = (tmp_path / "results" / "finetune-qwen2.5-coder-0.5b.md").read_text()
    assert "dev loss on 2 held-out records: lowest 1.2 at step 9 (kept; stopped early: False)" in report
    assert "post-training check: passed" in report
