"""scripts/measure_finetune.py with its `postreason` commands simulated: self-distillation over several
benchmarks, training, the base arms reused from earlier runs where settings and questions match (and only
the rest evaluated), the adapter evaluated, and a report whose statistics are the study's."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.records import ExampleRecord, RunStore

ROOT = Path(__file__).resolve().parents[1]
BASE = "qwen2.5-coder-1.5b"
TUNED = f"{BASE}+lora-0123456789ab"
N = 20
MIX, TRANSFER = ["commonsense_qa", "arc_challenge"], ["sciq"]
# Question indexes each arm gets right. Tuned post wins 7 questions over base post on the mix (losing none)
# and, on sciq, wins 1 and loses 2.
RIGHT = {("base", "direct"): set(range(5)), ("base", "post"): set(range(6)),
         ("tuned", "direct"): set(range(5)), ("tuned", "post"): set(range(13))}
RIGHT_SCIQ_TUNED_POST = {0, 1, 2, 3, 10}


def load_script():
    spec = importlib.util.spec_from_file_location("measure_finetune", ROOT / "scripts" / "measure_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ids(benchmark: str, limit: int = N) -> list[str]:
    return [f"{benchmark}-q{i}" for i in range(limit)]


def write_run(runs: Path, run_id: str, benchmarks, strategies, weights: str = BASE, *, max_tokens: int = 512,
              answered: int = N, prompt_tokens: int = 100, tokens: dict | None = None, complete: bool = True,
              echo: int = 0) -> RunStore:
    """A run folder as `postreason eval` leaves it: config.json (settings, weights served, question ids) and records."""
    config = {"config": {"models": ["local"], "benchmarks": list(benchmarks), "strategies": list(strategies),
                         "limit": N, "split": "test", "seed": 0, "max_tokens": max_tokens, "temperature": 0.0,
                         "data": {}, "programs": {}, "pairs": []},
              "models": {"local": {"model": "hosted_vllm/local", "local_model": weights}},
              "benchmarks": {name: {"example_ids": ids(name)} for name in benchmarks}}
    store = RunStore.create(runs, config, run_id)
    add_records(store, weights, answered, prompt_tokens, tokens or {}, echo)
    if complete:
        store.write_summary({"complete": True})
    return store


def add_records(store: RunStore, weights: str, answered: int, prompt_tokens: int, tokens: dict, echo: int) -> None:
    config = store.read_config()["config"]
    model = "tuned" if "+lora-" in weights else "base"
    done = {record.key for record in store.records()}
    for benchmark in config["benchmarks"]:
        for strategy in config["strategies"]:
            right = RIGHT[(model, strategy)]
            if (benchmark, model, strategy) == ("sciq", "tuned", "post"):
                right = RIGHT_SCIQ_TUNED_POST
            for i, qid in enumerate(ids(benchmark)[:answered]):
                record = ExampleRecord(
                    model="local", benchmark=benchmark, strategy=strategy, id=qid, status="ok",
                    inputs={"question": f"question {i}", "options": "A. x\nB. y"}, correct=i in right,
                    completion=(f"[[ ## question ## ]] question {i}" if i < echo else "[[ ## answer ## ]] A"),
                    prompt_tokens=prompt_tokens, completion_tokens=tokens.get((benchmark, model, strategy), 8),
                    latency_s=2.0, finish_reason="stop")
                if record.key not in done:
                    store.append(record)


class FakeCli:
    """Plays the commands the script runs: records each, and writes what the real command would leave."""

    def __init__(self, runs: Path):
        self.runs, self.commands, self.served = runs, [], None
        self.failed, self.records, self.check = 0, 700, {"status": "passed"}
        self.tokens, self.echo, self.stop_after = {}, 0, None

    def __call__(self, *args: str, check: bool = True) -> None:
        self.commands.append(args)
        if args[:2] == ("local", "down"):
            self.served = None
        elif args[:2] == ("local", "up"):
            self.served = TUNED if "--lora" in args else args[args.index("--model") + 1]
        elif args[0] == "distill":
            self.distill(args)
        elif args[0] == "finetune":
            self.finetune(args)
        elif args[0] == "eval":
            self.evaluate(args)

    def distill(self, args: tuple[str, ...]) -> None:
        assert self.served == BASE and args[args.index("--model") + 1] == "local"  # its own teacher
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True)
        sources = {name: {"kept": 300, "rationalized": 50, "rejected": 20, "failed": self.failed, "test_overlap": 0,
                          "records": self.records // 2, "rejections": {"copied_input": 15, "cites_the_hint": 5}}
                   for name in args[args.index("--benchmark") + 1].split(",")}
        (out / "train.jsonl").write_text("{}\n")
        (out / "summary.json").write_text(json.dumps({
            "kept": 600, "rationalized": 100, "rejected": 40, "failed": self.failed, "test_overlap": 0,
            "records": self.records, "rejections": {"copied_input": 30, "cites_the_hint": 10}, "sources": sources}))

    def finetune(self, args: tuple[str, ...]) -> None:
        assert self.served is None, "training while a server runs"
        out = Path(args[args.index("--out") + 1])
        if "--check-only" in args:
            record = json.loads((out / "finetune.json").read_text())
            (out / "finetune.json").write_text(json.dumps({**record, "check": self.check}))
            return
        out.mkdir(parents=True)
        steps = int(args[args.index("--max-steps") + 1]) if "--max-steps" in args else 9
        (out / "finetune.json").write_text(json.dumps({
            "device": "cpu", "steps": steps, "seconds": 30.0 * steps, "dev_seconds": 40.0, "tokens": 12000,
            "loss_tokens": 4000, "tokens_per_s": 20.0, "losses": [1.5, 1.1],
            "data": {"records": 700, "used": 630, "dev": {"used": 70}},
            "config": {"loss": "format", "batch_size": 4}, "dev_losses": [[steps, 1.2]], "best_step": steps,
            "best_dev_loss": 1.2, "stopped_early": False, "check": self.check}))
        run = self.runs / args[args.index("--run-id") + 1]
        run.mkdir(parents=True, exist_ok="--resume" in args)
        (run / "loss.png").write_bytes(b"png")

    def evaluate(self, args: tuple[str, ...]) -> None:
        assert self.served is not None
        if "--resume" in args:
            store = RunStore.open(args[args.index("--resume") + 1], self.runs)
            add_records(store, self.served, N, 100, self.tokens, self.echo)
            store.write_summary({"complete": True})
            return
        assert args[args.index("--max-tokens") + 1] == "512" and args[args.index("--limit") + 1] == str(N)
        run_id = args[args.index("--run-id") + 1]
        write_run(self.runs, run_id, args[args.index("--benchmark") + 1].split(","),
                  args[args.index("--strategy") + 1].split(","), self.served, tokens=self.tokens, echo=self.echo,
                  answered=self.stop_after or N, complete=self.stop_after is None)
        if self.stop_after is not None:
            self.stop_after = None
            raise SystemExit(130)  # interrupted: the run is left partial


@pytest.fixture
def run(tmp_path, monkeypatch):
    script = load_script()
    runs = tmp_path / "runs"
    cli = FakeCli(runs)
    monkeypatch.setattr(script, "postreason", cli)
    monkeypatch.setattr(script, "question_ids", ids)
    study = tmp_path / "study"
    write_run(study, "study-core", MIX, ["direct", "post"])
    argv = ["--base", BASE, "--benchmark", ",".join(MIX), "--transfer", ",".join(TRANSFER), "--limit", str(N),
            "--loss", "format", "--run-id", "ft", "--runs-dir", str(runs), "--results-dir", str(tmp_path / "results"),
            "--base-run", str(study / "study-core")]
    return script, cli, argv, tmp_path


def evals(cli: FakeCli) -> list[tuple[str, ...]]:
    return [command for command in cli.commands if command[0] == "eval"]


def option(command: tuple[str, ...], name: str) -> str:
    return command[command.index(name) + 1]


def result_of(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "results" / f"finetune-{BASE}.json").read_text())


def test_steps_run_in_order_reuse_the_matching_base_arms_and_evaluate_only_the_rest(run):
    script, cli, argv, tmp_path = run
    assert script.main(argv) == 0
    names = [" ".join(command[:2]) if command[0] == "local" else command[0] for command in cli.commands]
    assert names.index("distill") < names.index("finetune") < names.index("eval")
    assert cli.commands[-1] == ("local", "down")
    distill = next(command for command in cli.commands if command[0] == "distill")
    assert option(distill, "--benchmark") == "commonsense_qa,arc_challenge" and "--rationalize" in distill
    finetune = next(command for command in cli.commands if command[0] == "finetune")
    assert option(finetune, "--loss") == "format" and "--epochs" not in finetune  # finetune's own default
    base, tuned = evals(cli)
    assert (option(base, "--run-id"), option(base, "--benchmark"), option(base, "--strategy")) == \
        ("ft-base", "sciq", "direct,post")  # the study run has the mix's base arms, not sciq's
    assert (option(tuned, "--run-id"), option(tuned, "--benchmark")) == \
        ("ft-tuned", "commonsense_qa,arc_challenge,sciq")

    result = result_of(tmp_path)
    rows = {row["benchmark"]: row for row in result["per_benchmark"]}
    assert rows["commonsense_qa"]["sources"] == {"base direct": "study-core", "base post": "study-core",
                                                 "tuned post": "ft-tuned", "tuned direct": "ft-tuned"}
    assert rows["sciq"]["sources"]["base post"] == "ft-base" and not rows["sciq"]["training_mix"]
    accuracy = {label: arm["accuracy"] for label, arm in rows["commonsense_qa"]["arms"].items()}
    assert accuracy == {"base direct": 0.25, "base post": 0.3, "tuned post": 0.65, "tuned direct": 0.25}
    first = rows["commonsense_qa"]["pairs"][0]
    assert (first["treatment"], first["baseline"], first["pairs"]) == ("tuned post", "base post", N)
    assert (first["treatment_only"], first["baseline_only"]) == (7, 0)
    assert (rows["sciq"]["pairs"][0]["treatment_only"], rows["sciq"]["pairs"][0]["baseline_only"]) == (1, 2)


def test_the_headline_is_the_studys_over_every_benchmark_with_the_pooled_mcnemar(run):
    script, _, argv, tmp_path = run
    script.main(argv)
    every, mix, transfer = result_of(tmp_path)["headlines"]
    assert (every["model"], every["settings"], every["wins"], every["losses"]) == (f"{BASE}, every benchmark", 3, 2, 1)
    assert every["mean_relative_improvement"] == pytest.approx((7 / 6 + 7 / 6 - 1 / 6) / 3)
    # exact McNemar on the pooled discordant pairs: 7 + 7 + 1 won, 0 + 0 + 2 lost
    by_hand = 2 * sum(math.comb(17, k) for k in range(3)) / 2 ** 17
    assert (every["pooled"]["favourable"], every["pooled"]["unfavourable"]) == (15, 2)
    assert every["pooled"]["p_value"] == pytest.approx(by_hand)
    assert (mix["settings"], mix["wins"], transfer["settings"], transfer["losses"]) == (2, 2, 1, 1)
    report = (tmp_path / "results" / f"finetune-{BASE}.md").read_text()
    assert "tuned post beats base post in 2 of 3 settings" in report
    assert "| commonsense_qa | training | 20 | 25.0% | 30.0% | 65.0% | 25.0% | +35.0 pp | 7/0 |" in report


def test_mismatched_base_runs_are_refused_with_the_reason(run, capsys):
    script, cli, argv, tmp_path = run
    write_run(tmp_path / "study", "short", TRANSFER, ["direct", "post"], max_tokens=256)
    write_run(tmp_path / "study", "small", TRANSFER, ["direct", "post"], weights="qwen2.5-coder-0.5b")
    write_run(tmp_path / "study", "adapted", TRANSFER, ["direct", "post"], weights=TUNED)
    extra = [arg for name in ("short", "small", "adapted") for arg in ("--base-run", str(tmp_path / "study" / name))]
    assert script.main([*argv, *extra]) == 0
    assert option(evals(cli)[0], "--benchmark") == "sciq"  # none of the three could stand for sciq's base arms
    out = capsys.readouterr().out
    assert "base post on sciq: not reused from short: max_tokens 256, not 512" in out
    assert "small: it served qwen2.5-coder-0.5b, not qwen2.5-coder-1.5b" in out
    assert f"adapted: it served {TUNED}, not {BASE}" in out


def test_a_partial_base_arm_is_evaluated_alone(run):
    script, cli, argv, tmp_path = run
    write_run(tmp_path / "study", "new-direct", TRANSFER, ["direct"])
    write_run(tmp_path / "study", "new-post", TRANSFER, ["post"], answered=N - 5)  # stopped 5 questions short
    extra = ["--base-run", str(tmp_path / "study" / "new-direct"), "--base-run", str(tmp_path / "study" / "new-post")]
    assert script.main([*argv, *extra]) == 0
    base = evals(cli)[0]
    assert (option(base, "--benchmark"), option(base, "--strategy")) == ("sciq", "post")
    rows = {row["benchmark"]: row for row in result_of(tmp_path)["per_benchmark"]}
    assert rows["sciq"]["sources"]["base direct"] == "new-direct" and rows["sciq"]["sources"]["base post"] == "ft-base"


def test_a_second_run_reuses_every_finished_step(run):
    script, cli, argv, _ = run
    script.main(argv)
    cli.commands.clear()
    assert script.main(argv) == 0
    assert cli.commands == [("local", "down")]


def test_an_interrupted_base_evaluation_is_resumed_not_started_again(run):
    script, cli, argv, tmp_path = run
    cli.stop_after = 7
    with pytest.raises(SystemExit):
        script.main(argv)
    cli.commands.clear()
    assert script.main(argv) == 0
    assert [option(c, "--resume") if "--resume" in c else option(c, "--run-id") for c in evals(cli)] == \
        ["ft-base", "ft-tuned"]
    assert not (tmp_path / "runs" / "ft-base-2").exists()
    assert result_of(tmp_path)["per_benchmark"][2]["sources"]["base direct"] == "ft-base"


def test_a_distillation_with_failed_examples_goes_on_to_training(run):
    script, cli, argv, _ = run
    cli.failed = 1  # e.g. an answer that names no option, the same on every retry
    assert script.main(argv) == 0
    assert [command[0] for command in cli.commands].count("distill") == 1
    assert any(command[0] == "finetune" for command in cli.commands)


def test_too_few_records_stop_before_training(run):
    script, cli, argv, _ = run
    cli.records = 450
    with pytest.raises(SystemExit, match="450 records after filtering, fewer than --min-records 600"):
        script.main(argv)
    assert not any(command[0] == "finetune" for command in cli.commands)


def test_a_retraining_reuses_the_earlier_runs_data_and_base_evaluation(run):
    script, cli, argv, tmp_path = run
    script.main(argv)
    cli.commands.clear()
    at = argv.index("--run-id")
    assert script.main([*argv[:at], "--run-id", "ft2", "--reuse", "ft", *argv[at + 2:]]) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["finetune", "eval"]
    assert option(evals(cli)[0], "--run-id") == "ft2-tuned"
    rows = {row["benchmark"]: row for row in result_of(tmp_path)["per_benchmark"]}
    assert rows["sciq"]["sources"]["base post"] == "ft-base" and rows["sciq"]["sources"]["tuned post"] == "ft2-tuned"


def test_an_adapter_that_failed_its_check_is_not_evaluated(run):
    script, cli, argv, _ = run
    cli.check = {"status": "failed", "failure": "the adapter failed its check: 1 of 5 greedy replies break the format"}
    with pytest.raises(SystemExit, match="1 of 5 greedy replies break the format"):
        script.main(argv)
    assert not evals(cli)


def test_an_adapter_left_unchecked_is_checked_before_it_is_evaluated(run):
    script, cli, argv, _ = run
    cli.check = {"status": "not run", "failure": None}
    original = cli.finetune

    def then_fails(args):
        original(args)
        cli.check = {"status": "failed", "failure": "the adapter failed its check: the reply opens with the question"}

    cli.finetune = then_fails
    with pytest.raises(SystemExit, match="opens with the question"):
        script.main(argv)
    assert [command for command in cli.commands if "--check-only" in command]
    assert not evals(cli)


def test_a_tuned_run_of_the_base_weights_is_refused(run):
    script, _, argv, tmp_path = run
    write_run(tmp_path / "runs", "ft-tuned", [*MIX, *TRANSFER], ["direct", "post"], weights=BASE)
    with pytest.raises(SystemExit, match=f"served {BASE}, not a LoRA adapter on {BASE}"):
        script.main(argv)


def test_the_report_counts_echoed_inputs_tokens_and_changed_prompts(run):
    script, cli, argv, tmp_path = run
    cli.echo = 3  # the tuned model opens 3 answers per arm by repeating the question
    cli.tokens = {("sciq", "tuned", "post"): 12}  # base post answers in 8
    write_run(tmp_path / "study", "longer", TRANSFER, ["direct", "post"], prompt_tokens=140)
    assert script.main([*argv, "--base-run", str(tmp_path / "study" / "longer")]) == 0
    result = result_of(tmp_path)
    rows = {row["benchmark"]: row for row in result["per_benchmark"]}
    assert rows["sciq"]["echoed_inputs"] == {"tuned post": 3, "tuned direct": 3}
    assert result["echoed_inputs"] == {"count": 18, "answers": 3 * 2 * N}
    assert rows["sciq"]["output_tokens"] == {"base post": 8, "tuned post": 12, "within": False}
    assert rows["commonsense_qa"]["output_tokens"]["within"] is True and result["tokens_within"] == 2
    assert rows["sciq"]["prompts_differ"] == {"direct": N, "post": N} and result["prompts_differ"] == 2 * N


def test_the_report_states_data_training_and_keeps_the_records(run):
    script, _, argv, tmp_path = run
    script.main(argv)
    report = (tmp_path / "results" / f"finetune-{BASE}.md").read_text()
    assert ("Training: 9 steps, 270 s on cpu, 12000 tokens (20.0 tokens/s), loss 1.5000 -> 1.1000; dev loss on 70 "
            "held-out records: lowest 1.2000 at step 9 (kept; stopped early: False)") in report
    assert "post-training check: passed" in report
    assert 'rejected 40 ({"copied_input": 30, "cites_the_hint": 10})' in report
    assert "commonsense_qa 350 records" in report
    result = result_of(tmp_path)
    assert result["loss_plot"] == str(tmp_path / "results" / f"finetune-{BASE}-loss.png")
    kept = {path.name for path in (tmp_path / "results" / f"finetune-{BASE}-records").iterdir()}
    assert {"distill-train.jsonl", "finetune.json", "ft-tuned-examples.jsonl", "ft-base-config.json"} <= kept


def test_time_steps_trains_a_few_steps_and_sizes_the_run(run, capsys):
    script, cli, argv, tmp_path = run
    assert script.main([*argv, "--time-steps", "3", "--epochs", "2", "--eval-every", "20"]) == 0
    finetune = next(command for command in cli.commands if command[0] == "finetune")
    assert (option(finetune, "--max-steps"), option(finetune, "--check")) == ("3", "0")
    assert [finetune[i + 1] for i, word in enumerate(finetune) if word == "--eval-every"][-1] == "3"  # the last wins
    assert not evals(cli)
    timing = json.loads((tmp_path / "runs" / "ft" / "timing.json").read_text())
    # 630 training records in batches of 4 -> 158 steps per epoch, 316 in 2 epochs at 30 s, 16 dev measurements
    # at 40 s
    assert (timing["seconds_per_step"], timing["steps_per_epoch"], timing["planned_steps"]) == (30.0, 158, 316)
    assert timing["estimated_training_minutes"] == round((316 * 30 + 16 * 40) / 60, 1)
    assert "30.0 s per step on cpu" in capsys.readouterr().out


def test_plan_prints_what_is_reused_and_runs_nothing(run, capsys):
    script, cli, argv, _ = run
    assert script.main([*argv, "--plan"]) == 0
    assert cli.commands == []
    out = capsys.readouterr().out
    assert "base post on commonsense_qa: reused from study-core" in out
    assert "to evaluate with the base model: direct,post on sciq" in out
    assert "answers to evaluate: 160 (2 base arms, 6 tuned)" in out


def test_a_transfer_benchmark_in_the_mix_is_refused(run):
    script, _, argv, _ = run
    with pytest.raises(SystemExit, match="--transfer names a training benchmark: commonsense_qa"):
        script.main([*argv, "--transfer", "commonsense_qa"])


def test_distill_limits_reach_distill_one_for_all_and_one_per_named_benchmark(run):
    script, cli, argv, _ = run
    assert script.main([*argv, "--distill-limit", "300", "--distill-limit", "arc_challenge=150"]) == 0
    distill = next(command for command in cli.commands if command[0] == "distill")
    limits = [distill[i + 1] for i, word in enumerate(distill) if word == "--limit"]
    assert limits == ["300", "arc_challenge=150"]


def test_a_distill_limit_naming_a_benchmark_outside_the_mix_is_refused_before_any_step(run):
    script, cli, argv, _ = run
    refused = "--distill-limit names 'sciq', which is not a benchmark of this command"
    with pytest.raises(ConfigurationError, match=refused):
        script.main([*argv, "--distill-limit", "sciq=10"])
    assert cli.commands == []


def test_time_steps_on_earlier_data_distils_nothing(run, capsys):
    script, cli, argv, tmp_path = run
    earlier = tmp_path / "earlier-distill"
    assert script.main([*argv, "--time-steps", "2", "--time-data", str(earlier)]) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["finetune"]
    assert next(command for command in cli.commands if command[0] == "finetune")[1] == str(earlier)
    timing = json.loads((tmp_path / "runs" / "ft" / "timing.json").read_text())
    assert timing["minutes_per_100_records_per_epoch"] == round(30 * 100 / 4 / 60, 1)  # 25 steps of 30 s


def test_a_training_stopped_before_its_first_checkpoint_is_resumed(run):
    script, cli, argv, tmp_path = run
    (tmp_path / "runs" / "ft-finetune").mkdir(parents=True)  # its record was made, no checkpoint yet
    assert script.main(argv) == 0
    assert "--resume" in next(command for command in cli.commands if command[0] == "finetune")


def test_stop_after_ends_the_run_after_that_step_and_a_rerun_goes_on(run, capsys):
    script, cli, argv, tmp_path = run
    assert script.main([*argv, "--stop-after", "distill"]) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["distill"]
    assert cli.served is None  # the server is stopped for whatever runs next
    assert "stopped after distill" in capsys.readouterr().out
    assert script.main([*argv, "--stop-after", "train"]) == 0
    assert [command[0] for command in cli.commands if command[0] != "local"] == ["distill", "finetune"]
    assert not (tmp_path / "results").exists()
    assert script.main(argv) == 0
    steps = [command[0] for command in cli.commands if command[0] != "local"]
    assert steps.count("distill") == 1 and steps.count("finetune") == 1 and "eval" in steps
    assert result_of(tmp_path)["runs"]["tuned"] == "ft-tuned"
