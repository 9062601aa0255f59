"""One run folder for every command: made once, reopened by id or path, marked with its kind; folders from
before the marker (and the committed results/ copies) are still recognised and read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postreason_dspy.distill.run import distill_folder
from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation import RunStore
from postreason_dspy.finetune.run import record_folder
from postreason_dspy.run_folder import COMPARE, DISTILL, EVAL, FINETUNE, TUNE, RunFolder, folder_kind
from postreason_dspy.tuning.report import tune_run_path

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_each_command_marks_its_folder_with_its_kind(tmp_path):
    store = RunStore.create(tmp_path, {"config": {}}, run_id="e")
    finetuned = record_folder(tmp_path, "f", False, {"command": "postreason finetune"})
    compared = RunFolder.ensure(tmp_path / "c", COMPARE, {"command": "python scripts/compare_optimizers.py"})
    distilled = distill_folder(tmp_path / "d")
    tuned = RunFolder.create(tmp_path, TUNE, {"config": {}}, "t", resume_hint="")
    assert [folder_kind(path) for path in (store.path, finetuned.path, compared.path, distilled.path, tuned.path)] == [
        EVAL, FINETUNE, COMPARE, DISTILL, TUNE]
    assert json.loads((tmp_path / "f" / "config.json").read_text())["kind"] == "finetune"
    assert json.loads((tmp_path / "t" / "tune.json").read_text()) == {"kind": "tune", "config": {}}
    assert folder_kind(tmp_path / "nothing") is None


def test_folders_from_before_the_marker_are_recognised_by_their_files(tmp_path):
    write(tmp_path / "ft" / "config.json", {"command": "postreason finetune", "config": {}})  # as finetune wrote it
    write(tmp_path / "ft" / "finetune.json", {"run_id": "ft"})
    write(tmp_path / "cmp" / "settings.json", {"budget": 40})
    write(tmp_path / "dist" / "distill.json", {"split": "train"})
    write(tmp_path / "ev" / "config.json", {"config": {}})
    (tmp_path / "ev" / "examples.jsonl").touch()
    write(tmp_path / "other" / "config.json", {"architectures": ["Qwen2ForCausalLM"]})  # a model folder, say
    kinds = {name: folder_kind(tmp_path / name) for name in ("ft", "cmp", "dist", "ev", "other")}
    assert kinds == {"ft": FINETUNE, "cmp": COMPARE, "dist": DISTILL, "ev": EVAL, "other": None}
    assert RunStore.open("ev", tmp_path).read_config() == {"config": {}}


def test_the_committed_results_folders_still_load():
    study = ROOT / "results" / "study" / "runs" / "study-1.5b-core"
    assert folder_kind(study) == EVAL and RunStore.open(study, ROOT / "runs").records()
    for tuned in sorted((ROOT / "results").glob("tune-1.5b-*")):
        assert folder_kind(tuned) == TUNE and tune_run_path(tuned, ROOT / "runs") == tuned
    for compared in sorted((ROOT / "results").glob("compare-*")):
        assert folder_kind(compared) == COMPARE


def test_a_folder_of_another_kind_is_never_opened_or_overwritten_as_this_one(tmp_path):
    record_folder(tmp_path, "f", False, {"command": "postreason finetune"})
    RunStore.create(tmp_path, {"config": {}}, run_id="e")
    with pytest.raises(ConfigurationError, match="f is a fine-tuning record, not an evaluation run"):
        RunStore.open("f", tmp_path)
    with pytest.raises(ConfigurationError, match="holds an evaluation run, not a distillation"):
        distill_folder(tmp_path / "e")
    with pytest.raises(ConfigurationError, match="already exists: continue that fine-tuning with --resume"):
        record_folder(tmp_path, "f", False, {})
    with pytest.raises(ConfigurationError, match="holds an evaluation run, not a fine-tuning record"):
        record_folder(tmp_path, "e", True, {})
    write(tmp_path / "model" / "config.json", {"architectures": []})
    with pytest.raises(ConfigurationError, match=r"a config\.json of something else"):
        distill_folder(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text()) == {"architectures": []}


def test_a_resumed_finetune_continues_into_its_folder_and_an_old_comparison_gets_its_marker(tmp_path):
    first = record_folder(tmp_path, "f", False, {"created": "then"})
    again = record_folder(tmp_path, "f", True, {"created": "now"})
    assert again.path == first.path and json.loads(first.config_path.read_text())["created"] == "then"
    with pytest.raises(ConfigurationError, match="plain directory name"):
        record_folder(tmp_path, "../f", True, {})
    write(tmp_path / "cmp" / "settings.json", {"budget": 40})
    RunFolder.ensure(tmp_path / "cmp", COMPARE, {"created": "now"})
    assert json.loads((tmp_path / "cmp" / "config.json").read_text()) == {"kind": "compare", "created": "now"}
    assert json.loads((tmp_path / "cmp" / "settings.json").read_text()) == {"budget": 40}
