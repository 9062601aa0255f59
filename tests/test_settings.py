"""Settings declared once: a search setting is one field of `SearchSettings`, and the tune command's option, its
help's default, `TuneConfig`, `command()`, tune.json and `--resume` all follow from it; `EvalConfig` likewise.
Run folders written before (results/) still load, and the commands they recorded still mean the same."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pytest

from postreason_dspy.cli import build_parser
from postreason_dspy.cli import eval as eval_cli
from postreason_dspy.cli import tune as tune_cli
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import EvalConfig
from postreason_dspy.flags import setting
from postreason_dspy.optimizers import PostReasonSearch, SearchSettings
from postreason_dspy.tuning import TuneConfig
from postreason_dspy.tuning.run import TUNE_SEARCH

RESULTS = Path(__file__).resolve().parent.parent / "results"


@dataclass(frozen=True)
class JitterSettings(SearchSettings):
    """The search's settings with one more, as a contributor would add it: one field."""

    jitter: float = setting(0.0, flag="--jitter", metavar="J", help="how far to jitter the sampler")


@dataclass(frozen=True)
class JitterTuneConfig(TuneConfig):
    search: JitterSettings = JitterSettings(**asdict(TUNE_SEARCH))


def tune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postreason")
    tune_cli.register(parser.add_subparsers())
    return parser


def help_of(parser: argparse.ArgumentParser, command: str, capsys: pytest.CaptureFixture) -> str:
    """`postreason COMMAND --help` as one line."""
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def round_trip(parser: argparse.ArgumentParser, build, config):
    """The config that the command line `config.command()` builds when given to `parser`."""
    return build(parser.parse_args(shlex.split(config.command())[1:]))


def test_adding_a_search_option_is_one_field(monkeypatch, capsys):
    monkeypatch.setattr(tune_cli, "TuneConfig", JitterTuneConfig)
    parser = tune_parser()
    assert "--jitter J how far to jitter the sampler (default 0.0)" in help_of(parser, "tune", capsys)

    args = parser.parse_args(["tune", "--benchmark", "gsm8k", "--model", "local", "--jitter", "0.25", "--trials", "5"])
    config = tune_cli._config(args)
    assert isinstance(config, JitterTuneConfig)
    search = config.search
    assert (search.jitter, search.num_trials, search.demo_styles) == (0.25, 5, ("justified", "bare"))
    assert "--jitter 0.25" in config.command()
    assert round_trip(parser, tune_cli._config, config) == config  # command() gives it back
    stored = json.loads(json.dumps(asdict(config)))  # as tune.json holds it
    assert stored["search"]["jitter"] == 0.25 and JitterTuneConfig.from_dict(stored) == config
    assert PostReasonSearch(lambda *a: True, config.search).settings.jitter == 0.25

    resumed = parser.parse_args(["tune", "--resume", "r", "--jitter", "1"])
    with pytest.raises(ConfigurationError, match=r"drop.*\(--jitter\)"):  # a run keeps its settings
        tune_cli.run_tune_command(resumed)


def test_the_tune_options_and_their_defaults_come_from_the_config(monkeypatch, capsys):
    monkeypatch.delenv("POSTREASON_API_BASE", raising=False)
    parser = tune_parser()
    shown = help_of(parser, "tune", capsys)
    # the tune's own search defaults (16 trials, automatic demo sets), not the library's (20, 3)
    assert "--trials N counted trials" in shown and "over all workers (default 16)" in shown
    assert "as many as the budget can try (default auto)" in shown and "(default justified,bare)" in shown
    config = tune_cli._config(parser.parse_args(["tune", "--benchmark", "gsm8k", "--model", "m"]))
    assert config == TuneConfig(models=("m",), benchmark="gsm8k") and config.search == TUNE_SEARCH
    everything = ["tune", "--benchmark", "gsm8k", "--model", "m", "--model", "n", "--train-size", "all",
                  "--demo-sets", "0", "--max-demos", "2", "--demo-styles", "bare", "--seed", "7", "--max-lm-calls",
                  "90", "--adapters", "xml", "--rationale-fields", "justification", "--propose", "2",
                  "--prompt-model", "p", "--minibatch", "5", "--pruner", "halving", "--select", "cheapest-within-ci",
                  "--no-direct-candidate", "--with-cot", "--with-direct-demos", "--storage",
                  "postgresql://u:pw@h/db", "--data", "x.jsonl", "--api-base", "http://h:1/v1"]
    config = tune_cli._config(parser.parse_args(everything))
    assert config.train_size is None and config.seed == 7 and not config.direct_candidate
    assert config.search == replace(TUNE_SEARCH, num_demo_sets=0, max_bootstrapped_demos=2, demo_styles=("bare",),
                                    seed=7, max_lm_calls=90, adapters=("XMLAdapter",),
                                    rationale_fields=("justification",), num_proposals=2, minibatch=5,
                                    pruner="halving", select="cheapest-within-ci")
    assert ":pw@" not in config.command() and "--storage 'postgresql://u:[redacted]@h/db'" in config.command()
    with_password = round_trip(parser, tune_cli._config, replace(config, storage="postgresql://u@h/db"))
    assert with_password == replace(config, storage="postgresql://u@h/db")


def test_a_search_setting_is_checked_once_and_named_as_the_user_gave_it():
    with pytest.raises(ConfigurationError, match=r"num_trials must be at least 1, not 0 \(--trials\)"):
        SearchSettings(num_trials=0)
    with pytest.raises(ConfigurationError, match=r"num_proposals must be at least 0, not -1 \(--propose\)"):
        replace(TUNE_SEARCH, num_proposals=-1)
    with pytest.raises(ConfigurationError, match="select must be one of best, cheapest-within-ci, not 'x'"):
        PostReasonSearch(lambda *a: True, select="x")
    settings = SearchSettings(num_trials=3, adapters=["xml", "XMLAdapter"], demo_styles=["bare", "bare"])
    assert (settings.adapters, settings.demo_styles) == (("XMLAdapter",), ("bare",))
    search = PostReasonSearch(lambda *a: True, settings, minibatch=2)  # keywords change the settings given
    assert search.settings == replace(settings, minibatch=2)
    assert PostReasonSearch(lambda *a: True, num_trials=3).settings == SearchSettings(num_trials=3)
    with pytest.raises(TypeError, match="trials"):
        PostReasonSearch(lambda *a: True, trials=3)  # the flag's name is not the keyword's
    withheld = TUNE_SEARCH.withholding_text()
    assert withheld.withhold_text and (withheld.num_demo_sets, withheld.num_proposals) == (0, 0)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("tune-*/tune.json")), ids=lambda p: p.parent.name)
def test_old_tune_folders_load_with_their_settings(path: Path, monkeypatch):
    """tune.json written before `search` was a field of its own: flat, with the old names (trials, max_demos)."""
    monkeypatch.delenv("POSTREASON_API_BASE", raising=False)
    document = json.loads(path.read_text())
    flat = document["config"]
    config = TuneConfig.from_dict(flat)
    assert (config.search.num_trials, config.search.num_demo_sets) == (flat["trials"], flat["num_demo_sets"])
    assert config.search.max_bootstrapped_demos == flat["max_demos"] and config.seed == flat["seed"]
    assert (config.dev_size, config.limit, config.benchmark) == (flat["dev_size"], flat["limit"], flat["benchmark"])
    assert config.with_direct_demos == flat.get("with_direct_demos", False)
    assert round_trip(tune_parser(), tune_cli._config, config) == config
    assert TuneConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config  # the new form loads too


def _eval_configs() -> list[Path]:
    return sorted(path for path in RESULTS.rglob("config.json") if "strategies" in json.loads(path.read_text())
                  .get("config", {}))


@pytest.mark.parametrize("path", _eval_configs(), ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_old_evaluation_runs_load_and_their_commands_mean_the_same(path: Path, monkeypatch):
    monkeypatch.delenv("POSTREASON_API_BASE", raising=False)
    document = json.loads(path.read_text())
    config = EvalConfig.from_dict(document["config"])
    assert json.loads(json.dumps(config.to_dict())) == document["config"]
    parser = build_parser()
    assert round_trip(parser, eval_cli._config, config) == config
    recorded = parser.parse_args(shlex.split(document["command"])[1:])
    assert eval_cli._config(recorded) == config  # the command the run recorded still asks for this run


def test_an_evaluation_option_is_derived_like_the_tune_options(monkeypatch, capsys):
    monkeypatch.delenv("POSTREASON_API_BASE", raising=False)
    parser = build_parser()
    shown = help_of(parser, "eval", capsys)
    assert "--limit N|all examples per benchmark, or 'all' (default 20)" in shown
    assert "--split {test,dev,train}" in shown and "(default 512)" in shown
    args = parser.parse_args(["eval", "--benchmark", "gsm8k", "--limit", "all", "--threads", "2", "--data",
                              "gsm8k=g.jsonl", "--program", "t.json=tuned", "--pair", "tuned:post"])
    config = eval_cli._config(args)
    assert config.limit is None and config.threads == 2 and config.data == {"gsm8k": "g.jsonl"}
    assert round_trip(parser, eval_cli._config, config) == config
    assert EvalConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
