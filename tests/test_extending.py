"""Open registries: benchmarks and strategies of one's own, from Python and from the command line.

tests/extending/ holds the examples docs/guide/extending.md includes; they run here against the scripted LM.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

import postreason_dspy
from postreason_dspy import (
    ConfigurationError,
    Direct,
    PostReason,
    list_strategies,
    make_strategy,
    register_benchmark,
    register_strategy,
    strategies,
)
from postreason_dspy.benchmarks import get_benchmark, list_benchmarks, registry
from postreason_dspy.cli import main
from postreason_dspy.cli.plugins import load_plugins
from postreason_dspy.evaluation import EvalConfig, session
from postreason_dspy.programs.math_word import MathWord
from postreason_dspy.testing import requested_order, scripted_lm

EXAMPLES = Path(__file__).parent / "extending"
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
            "Egypt": "Cairo"}


@pytest.fixture(autouse=True)
def _registries_restored():
    """Every test starts from the built-in registries and leaves no plugin module imported."""
    built_in, benchmarks = dict(strategies._STRATEGIES), dict(registry._BENCHMARKS)
    modules = set(sys.modules)
    yield
    strategies._STRATEGIES.clear()
    strategies._STRATEGIES.update(built_in)
    registry._BENCHMARKS.clear()
    registry._BENCHMARKS.update(benchmarks)
    for name in set(sys.modules) - modules:
        if name in ("capitals", "plan_first", "broken_plugin"):
            del sys.modules[name]


def terse(signature, **config) -> dspy.Module:
    return Direct(dspy.ensure_signature(signature).with_instructions("Answer in one word."), **config)


# --- strategies ------------------------------------------------------------------------------------


def test_a_registered_strategy_is_built_by_name_everywhere():
    register_strategy("terse", terse)
    lm, engine = scripted_lm({"answer": "42"})
    with dspy.context(lm=lm):
        assert make_strategy("terse", "question -> answer")(question="6 * 7?").answer == "42"
        assert MathWord("terse")(question="6 * 7?").answer == "42"
    assert "Answer in one word." in engine.requests[0].messages[0]["content"]
    assert EvalConfig(strategies=("direct", "terse")).strategies == ("direct", "terse")
    assert list_strategies() == ["direct", "post", "post_full", "cot", "terse"]


def test_register_strategy_is_the_only_way_in():
    listed = list_strategies()
    listed.append("sneaky")
    assert "sneaky" not in list_strategies()
    assert not hasattr(postreason_dspy, "STRATEGIES")


def test_an_existing_strategy_name_needs_replace():
    with pytest.raises(ConfigurationError, match="strategy 'post' is already registered; pass replace=True"):
        register_strategy("post", terse)
    register_strategy("post", terse, replace=True)
    assert strategies._STRATEGIES["post"] is terse


@pytest.mark.parametrize("name", ["", "a,b", "a:b", "a b", " a", "a\t", "Post", "a=b", "a/b", "-a"])
def test_bad_names_are_refused(name):
    with pytest.raises(ConfigurationError, match=r"strategy name .* is not valid"):
        register_strategy(name, terse)
    bench = get_benchmark("gsm8k")
    with pytest.raises(ConfigurationError, match=r"benchmark name .* is not valid"):
        register_benchmark(_renamed(bench, name))
    assert name not in list_strategies() and name not in registry._BENCHMARKS


def _renamed(bench, name):
    from dataclasses import replace

    return replace(bench, name=name)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("not callable", "the factory must be callable"),
        (lambda signature, **config: "a string", "must return a dspy.Module, not str"),
        (lambda signature: Direct(signature), "failed: .*on_parse_error"),
    ],
)
def test_a_factory_that_breaks_the_contract_is_refused_at_registration(factory, message):
    with pytest.raises(ConfigurationError, match=message):
        register_strategy("broken", factory)
    assert "broken" not in list_strategies()


def test_an_unknown_strategy_lists_registered_ones():
    register_strategy("terse", terse)
    with pytest.raises(ConfigurationError, match=r"unknown strategy 'tot'; choose from direct, .*, terse"):
        make_strategy("tot", "q -> a")
    with pytest.raises(ConfigurationError, match=r"unknown strategy 'tot'.*terse"):
        EvalConfig(strategies=("tot",))


# --- benchmarks ------------------------------------------------------------------------------------


def test_register_benchmark_is_exported_lazily_and_import_stays_light():
    assert postreason_dspy.register_benchmark is registry.register_benchmark
    assert "register_benchmark" in dir(postreason_dspy)
    code = "import sys, postreason_dspy; print(any(m.startswith('postreason_dspy.benchmarks') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    with pytest.raises(AttributeError, match="has no attribute 'register_benchmarks'"):
        postreason_dspy.register_benchmarks  # noqa: B018


def test_an_existing_benchmark_name_needs_replace_and_only_benchmarks_register():
    gsm8k = get_benchmark("gsm8k")
    with pytest.raises(ConfigurationError, match="benchmark 'gsm8k' is already registered; pass replace=True"):
        register_benchmark(gsm8k)
    register_benchmark(_renamed(gsm8k, "gsm8k"), replace=True)
    with pytest.raises(ConfigurationError, match="takes a Benchmark, not dict"):
        register_benchmark({"name": "x"})


def test_unknown_benchmark_names_the_built_in_and_the_registered_ones():
    with pytest.raises(ConfigurationError, match=r"unknown benchmark 'capital'; choose from gsm8k, .*bbh:<task> "
                       r"\(add your own with register_benchmark"):
        get_benchmark("capital")
    load_plugins(str(EXAMPLES / "capitals.py"))
    with pytest.raises(ConfigurationError) as error:
        get_benchmark("capital")
    assert str(error.value).endswith("or bbh:<task>; registered: capitals")
    assert "capitals," not in str(error.value)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _capitals_file(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "capitals.jsonl", [{"country": c, "capital": city} for c, city in CAPITALS.items()])


def _knows_capitals(user: str) -> dict[str, str]:
    """The scripted model: right about every capital except Peru's, with a plan and a rationale."""
    country = next(country for country in CAPITALS if f"capital of {country}" in user)
    city = "Cusco" if country == "Peru" else CAPITALS[country]
    return {"answer": f"{city}.", "plan": "recall it", "reasoning": "I know it.",
            "rationale": f"{city} is the seat of government."}


def test_the_readme_benchmark_example_loads_scores_and_runs_from_python(tmp_path):
    load_plugins(str(EXAMPLES / "capitals.py"))
    bench = get_benchmark("capitals")
    assert bench in list_benchmarks()
    data = _capitals_file(tmp_path)
    examples = [ex for split in ("test", "train", "dev") for ex in bench.load(split=split, path=data)]
    assert sorted(ex.answer for ex in examples) == sorted(CAPITALS.values())
    lm, _ = scripted_lm(_knows_capitals)
    with dspy.context(lm=lm):
        correct = {ex.answer: bench.metric(ex, bench.program("post")(**ex.inputs())) for ex in examples}
    assert correct == {city: city != "Lima" for city in CAPITALS.values()}


def test_the_readme_examples_run_through_postreason_eval(tmp_path, monkeypatch, capsys):
    """The Extending page's command, in a folder holding the two example files and the data."""
    for name in ("capitals.py", "plan_first.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    data = _capitals_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    lm, engine = scripted_lm(_knows_capitals)
    monkeypatch.setattr(session, "resolve_lm", lambda *args, **kwargs: lm)
    monkeypatch.setenv("POSTREASON_PLUGINS", "./capitals.py,./plan_first.py")
    command = ("eval --benchmark capitals --data capitals=capitals.jsonl "
               "--strategy direct,post,cot,plan_first --limit all")
    code = main([*command.split(), "--run-id", "caps", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "runs" / "caps" / "examples.jsonl").read_text().splitlines()]
    test_ids = {str(ex.id) for ex in get_benchmark("capitals").load(split="test", path=data)}
    names = ("direct", "post", "cot", "plan_first")
    assert {(r["strategy"], r["id"]) for r in records} == {(s, i) for s in names for i in test_ids}
    assert all(r["status"] == "ok" and r["lm_calls"] == 1 for r in records)
    assert all(r["correct"] == (r["gold"] != "Lima") for r in records)
    assert {r["answer"] for r in records} <= {"paris", "tokyo", "nairobi", "cusco", "santiago", "cairo"}
    plan_prompts = [req for req in engine.requests if "plan" in requested_order(req.messages[-1]["content"])]
    assert len(plan_prompts) == len(test_ids)
    assert requested_order(plan_prompts[0].messages[-1]["content"]) == ["plan", "answer"]


def test_plugins_load_once_and_their_strategy_shows_in_help(monkeypatch, capsys):
    monkeypatch.setenv("POSTREASON_PLUGINS", str(EXAMPLES / "plan_first.py"))
    first = load_plugins()
    assert load_plugins() == first  # a second command in the same process registers nothing twice
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "plan_first" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "POSTREASON_PLUGINS=module,path/to/file.py" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_plugin_module", re.escape("POSTREASON_PLUGINS: no module named 'no_such_plugin_module'; install it, "
                                            "add its folder to PYTHONPATH, or give the file's path "
                                            "(./no_such_plugin_module.py)")),
        ("./missing.py", "POSTREASON_PLUGINS: './missing.py': no such file"),
        ("BROKEN", "POSTREASON_PLUGINS: importing '.*broken_plugin.py' failed: ZeroDivisionError: integer division "
                   r"or modulo by zero \(.*broken_plugin.py, line 2\)"),
        ("DUPLICATE", "POSTREASON_PLUGINS: '.*broken_plugin.py': strategy 'post' is already registered"),
    ],
)
def test_a_bad_plugin_is_one_error_line(value, message, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken_plugin.py"
    if value == "BROKEN":
        broken.write_text("import math\nmath.factorial(3) // 0\n")
    if value == "DUPLICATE":
        broken.write_text("from postreason_dspy import Direct, register_strategy\nregister_strategy('post', Direct)\n")
    monkeypatch.setenv("POSTREASON_PLUGINS", str(broken) if value in ("BROKEN", "DUPLICATE") else value)
    monkeypatch.setenv("COLUMNS", "1000")  # the error line unwrapped
    assert main(["benchmarks"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert "broken_plugin" not in sys.modules
    assert strategies._STRATEGIES["post"].func is PostReason
