"""`postreason tune` with the opt-in search dimensions: the chosen format and rationale field reach
program.json, and the held-out evaluation runs the tuned program with its own adapter."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from test_tune import POST_ONLY, csqa_file

from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.bound_adapter import bound_adapter
from postreason_dspy.cli.tune import register
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.testing import scripted_lm
from postreason_dspy.tuning import TuneConfig, TuneRun
from postreason_dspy.tuning.run import _trial_lines

GOLD = re.compile(r"gold-([A-E])")


def plain_text_model():
    """Right only when asked in the plain-text format (no ChatAdapter headers); else always 'A'."""
    lm, engine = scripted_lm({})

    def script(user: str) -> dict[str, str]:
        gold = GOLD.findall(user)[-1]
        right = "[[ ## " not in user
        return {"answer": gold if right else "A", **{f: f"{gold} fits" for f in ("rationale", "justification")}}

    engine.script = script
    return lm, engine


def test_tune_searches_format_and_rationale_and_the_program_keeps_them(tmp_path):
    data = csqa_file(tmp_path)
    lm, _ = plain_text_model()
    config = TuneConfig(models=("scripted",), benchmark="commonsense_qa", trials=8, train_size=4, dev_size=8,
                        limit=10, num_demo_sets=0, data=str(data), adapters=("chat", "plain"),
                        rationale_fields=("justification",), minibatch=4, **POST_ONLY)
    run = TuneRun.create(tmp_path / "runs", config, "t1", lm_factory=lambda *a, **k: lm)
    row = run.run()["models"]["scripted"]
    saved = read_program(run.path / "scripted" / "program.json")
    assert saved.metadata["adapter"] == "PlainTextAdapter" and row["dev"]["tuned"] == 1.0
    assert bound_adapter(saved.build()) == "PlainTextAdapter"
    field = saved.program_kwargs.get("rationale_field", "rationale")
    assert list(saved.build().choose.predict.signature.output_fields) == ["answer", field]
    assert row["test"]["tuned"] == 1.0 and row["test"]["untuned"] < 1.0  # the harness ran it in plain text
    assert all(line.get("answer_tokens") for line in _trial_lines(run.path / "scripted")[0]
               if line["state"] == "complete")
    stored = json.loads((run.path / "tune.json").read_text())
    assert "--adapters ChatAdapter,PlainTextAdapter" in stored["command"] and "--minibatch 4" in stored["command"]
    assert TuneRun.open("t1", tmp_path / "runs").config == run.config  # a resume keeps the options


def test_cli_flags_reach_the_config():
    from postreason_dspy.cli.tune import _config

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tune", "--benchmark", "gsm8k", "--model", "local", "--adapters", "xml,plain",
                              "--rationale-fields", "justification,verification", "--propose", "4",
                              "--minibatch", "10", "--select", "cheapest-within-ci"])
    config = _config(args)
    assert config.adapters == ("XMLAdapter", "PlainTextAdapter") and config.proposals == 4
    assert config.rationale_fields == ("justification", "verification") and config.minibatch == 10
    assert config.select == "cheapest-within-ci" and config.pruner == "bound" and config.prompt_model is None
    assert _config(parser.parse_args(["tune", "--benchmark", "gsm8k", "--model", "local"])) == TuneConfig(
        models=("local",), benchmark="gsm8k")  # without the flags, the run is the default one


def test_bad_search_options_fail_with_one_line():
    with pytest.raises(ConfigurationError, match="unknown adapter"):
        TuneConfig(models=("local",), benchmark="gsm8k", adapters=("json",))
    with pytest.raises(ConfigurationError, match="--prompt-model proposes"):
        TuneConfig(models=("local",), benchmark="gsm8k", prompt_model="local")
    with pytest.raises(ConfigurationError, match="--minibatch"):
        TuneConfig(models=("local",), benchmark="gsm8k", minibatch=0)
