"""`postreason tune` with the opt-in search dimensions: the chosen format and rationale field reach
program.json, and the held-out evaluation runs the tuned program with its own adapter."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace

import pytest
from test_tune import csqa_file, post_only

from postreason_dspy.benchmarks.program_file import read_program
from postreason_dspy.bound_adapter import bound_adapter
from postreason_dspy.cli.tune import register
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.testing import scripted_lm
from postreason_dspy.tuning import TuneConfig, TuneRun
from postreason_dspy.tuning.run import TUNE_SEARCH, _trial_lines

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
    config = TuneConfig(models=("scripted",), benchmark="commonsense_qa", train_size=4, dev_size=8, limit=10,
                        data=str(data), **post_only(num_trials=8, num_demo_sets=0, adapters=("chat", "plain"),
                                                    rationale_fields=("justification",), minibatch=4))
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
    search = _config(args).search
    assert search.adapters == ("XMLAdapter", "PlainTextAdapter") and search.num_proposals == 4
    assert search.rationale_fields == ("justification", "verification") and search.minibatch == 10
    assert search.select == "cheapest-within-ci" and search.pruner == "bound" and _config(args).prompt_model is None
    assert _config(parser.parse_args(["tune", "--benchmark", "gsm8k", "--model", "local"])) == TuneConfig(
        models=("local",), benchmark="gsm8k")  # without the flags, the run is the default one


def test_bad_search_options_fail_with_one_line():
    with pytest.raises(ConfigurationError, match="unknown adapter"):
        replace(TUNE_SEARCH, adapters=("json",))
    with pytest.raises(ConfigurationError, match="--prompt-model proposes"):
        TuneConfig(models=("local",), benchmark="gsm8k", prompt_model="local")
    with pytest.raises(ConfigurationError, match=r"minibatch must be at least 1, not 0 \(--minibatch\)"):
        replace(TUNE_SEARCH, minibatch=0)
