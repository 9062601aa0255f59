"""Crash-safe files: atomic replacement, JSONL with a torn last line, stable ids."""

from __future__ import annotations

import json

import pytest

from postreason_dspy.errors import ConfigurationError, SettingsChangedError
from postreason_dspy.io import (
    JsonlLog,
    atomic_path,
    atomic_write_json,
    changed_settings,
    content_id,
    json_id,
    refuse_changes,
    settings_changed,
)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_replaced_files_are_readable_by_others_like_any_written_file(tmp_path):
    atomic_write_json(tmp_path / "summary.json", {})
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644


def test_a_torn_last_line_is_skipped_then_cut_so_appending_goes_on(tmp_path):
    log = JsonlLog(tmp_path / "records.jsonl")
    log.append_many([{"id": "1"}, {"id": "2"}])
    with log.path.open("a") as handle:
        handle.write('{"id": "3", "half')
    assert log.read() == ([{"id": "1"}, {"id": "2"}], 1)
    assert log.repair() is True
    log.append({"id": "4"})
    assert log.read() == ([{"id": "1"}, {"id": "2"}, {"id": "4"}], 0)
    assert log.repair() is False


def test_read_counts_lines_that_do_not_parse_or_are_not_accepted(tmp_path):
    log = JsonlLog(tmp_path / "r.jsonl")
    log.path.write_text('{"id": "1"}\nnot json\n[1, 2]\n')
    assert log.read(lambda record: isinstance(record, dict)) == ([{"id": "1"}], 2)


def test_content_ids_are_stable_and_separate_their_parts():
    assert content_id("a", "b") == content_id("a", "b")
    assert content_id("a", "b") != content_id("ab")
    assert len(content_id("x")) == 16
    assert json_id({"b": 1, "a": 2}) == json_id({"a": 2, "b": 1})


def test_settings_changed_records_the_first_settings_and_names_what_differs_later(tmp_path):
    path = tmp_path / "settings.json"
    assert settings_changed(path, {"budget": 40, "adapters": ("chat", "xml")}) == []
    assert settings_changed(path, {"budget": 40, "adapters": ("chat", "xml")}) == []  # tuples read back as lists
    assert settings_changed(path, {"budget": 60, "adapters": ("chat", "xml")}) == ["budget"]
    assert settings_changed(path, {"budget": 40}) == ["adapters"]  # a setting the earlier run had
    assert json.loads(path.read_text()) == {"budget": 40, "adapters": ["chat", "xml"]}


def test_changed_settings_compare_as_saved_and_only_the_names_asked_for():
    saved = {"lr": 0.001, "adapters": ["chat"], "max_steps": 5}
    assert changed_settings(saved, {"lr": 0.001, "adapters": ("chat",), "max_steps": 50}, ["lr", "adapters"]) == []
    assert changed_settings(saved, {"lr": 0.01, "adapters": ("chat",), "seed": 1}) == ["lr", "seed", "max_steps"]


def test_a_changed_setting_is_refused_with_its_name_and_the_remedy(tmp_path):
    refuse_changes([], "anything", "never said")  # nothing changed: nothing to refuse
    path = tmp_path / "settings.json"
    settings_changed(path, {"seed": 0, "split": "train"})
    with pytest.raises(SettingsChangedError) as refused:
        refuse_changes(settings_changed(path, {"seed": 1, "split": "train"}), f"{tmp_path} holds other settings",
                       "use another --out")
    assert str(refused.value) == f"{tmp_path} holds other settings (seed); use another --out"
    assert isinstance(refused.value, ConfigurationError)  # the commands report it as bad input (exit 2)
