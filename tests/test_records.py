"""Run directories: the typed record and its format version, torn lines, compaction before resume, thread-safe
appends, the run lock, corrupt configs, secret scrubbing."""

from __future__ import annotations

import json
import os
import threading

import pytest

from postreason_dspy.errors import ConfigurationError
from postreason_dspy.evaluation.records import RECORD_FORMAT, ExampleRecord, RunStore, Setting
from postreason_dspy.secrets import REDACTED, scrub, secret_values, url_secrets


def rec(index, status="ok", strategy="direct", **extra):
    return ExampleRecord(model="m", benchmark="b", strategy=strategy, id=f"q{index}", status=status, **extra)


@pytest.fixture
def store(tmp_path):
    return RunStore.create(tmp_path, {"config": {"models": ["m"]}}, run_id="r1")


def test_a_record_line_keeps_the_documented_field_names(store):
    store.append(rec(0, answer="4", correct=True, completion_tokens=3))
    (line,) = store.examples_path.read_text().splitlines()
    data = json.loads(line)
    assert list(data) == ["model", "benchmark", "strategy", "id", "status", "inputs", "gold", "group", "answer",
                          "correct", "completion", "parse_error", "error", "prompt_tokens", "completion_tokens",
                          "latency_s", "finish_reason", "lm_calls", "attempts", "finished_at"]
    (record,) = store.records()
    assert record == rec(0, answer="4", correct=True, completion_tokens=3)
    assert record.setting == Setting("m", "b", "direct") and record.key == (Setting("m", "b", "direct"), "q0")


def test_lines_that_are_not_records_are_skipped_and_counted(store):
    store.append(rec(0))
    with store.examples_path.open("a") as handle:
        handle.write('{"model": "m", "benchmark": "b", "strategy": "direct"}\n[1, 2]\n')  # no id; not an object
    assert [r.id for r in store.records()] == ["q0"]
    assert store.compact().lines_dropped == 2


def test_create_open_and_latest(tmp_path, store):
    assert store.read_config() == {"kind": "eval", "record_format": RECORD_FORMAT, "config": {"models": ["m"]}}
    assert RunStore.open("r1", tmp_path).path == store.path
    assert RunStore.open(store.path, tmp_path / "elsewhere").path == store.path
    with pytest.raises(ConfigurationError, match="already exists"):
        RunStore.create(tmp_path, {}, run_id="r1")
    with pytest.raises(ConfigurationError, match=r"no run 'r2': neither r2 nor .*r2 holds an evaluation run"):
        RunStore.open("r2", tmp_path)
    with pytest.raises(ConfigurationError, match=r"no run '.*gone': .*gone does not hold an evaluation run"):
        RunStore.open(tmp_path / "gone", tmp_path)  # a path names one place, said once
    with pytest.raises(ConfigurationError, match="plain directory name"):
        RunStore.create(tmp_path, {}, run_id="../escape")
    later = RunStore.create(tmp_path, {"config": {}}, run_id="r0")
    os.utime(store.path / "config.json", (1_000, 1_000))
    os.utime(later.path / "config.json", (2_000, 2_000))
    assert RunStore.latest(tmp_path).path == later.path  # by start time, not by name
    with pytest.raises(ConfigurationError, match=r"is an evaluation run: start one with `postreason eval`"):
        RunStore.latest(tmp_path / "empty")


def test_torn_last_line_is_ignored_and_compaction_drops_it(store):
    store.append(rec(0))
    store.append(rec(1))
    with store.examples_path.open("a") as handle:
        handle.write('{"model": "m", "benchmark": "b", "strat')  # killed mid-write
    assert [r.id for r in store.records()] == ["q0", "q1"]
    compaction = store.compact()
    assert (compaction.kept, compaction.errors_dropped, compaction.lines_dropped) == (2, 0, 1)
    store.append(rec(2))
    lines = store.examples_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["q0", "q1", "q2"]


def test_compaction_keeps_one_line_per_example_and_drops_errors_to_redo(store):
    store.append(rec(0, answer="1"))
    store.append(rec(1, status="error"))
    store.append(rec(0, answer="2"))  # a later record of the same example replaces the earlier one
    store.append(rec(0, strategy="post"))
    assert len(store.records()) == 3
    compaction = store.compact()
    assert (compaction.kept, compaction.errors_dropped, compaction.lines_dropped) == (2, 1, 1)
    records = store.records()
    assert [(r.strategy, r.id, r.answer) for r in records] == [("direct", "q0", "2"), ("post", "q0", None)]
    assert len(store.examples_path.read_text().splitlines()) == 2


def test_concurrent_appends_lose_nothing(store):
    def write(thread):
        for index in range(50):
            store.append(rec(f"{thread}-{index}", completion="x" * 2000))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = store.examples_path.read_text().splitlines()
    assert len(lines) == 400
    assert len({json.loads(line)["id"] for line in lines}) == 400


def test_scrub_by_field_name_keeps_counts():
    data = {
        "api_key": "abc", "Authorization": "Bearer abc", "nested": [{"hf_token": "t", "openai_api_key": "k"}],
        "completion_tokens": 12, "max_tokens": 512, "prompt_tokens": 3, "tokens_per_s": 2.0, "api_base": "http://h",
        "password": None,
    }
    cleaned = scrub(data, secrets=[])
    assert cleaned["api_key"] == cleaned["Authorization"] == REDACTED
    assert cleaned["nested"] == [{"hf_token": REDACTED, "openai_api_key": REDACTED}]
    assert (cleaned["completion_tokens"], cleaned["max_tokens"], cleaned["prompt_tokens"]) == (12, 512, 3)
    assert cleaned["tokens_per_s"] == 2.0 and cleaned["api_base"] == "http://h" and cleaned["password"] is None


def test_scrub_by_environment_value():
    environ = {"OPENAI_API_KEY": "sk-live-0123456789", "HF_TOKEN": "hf_abcdefghijkl", "SHORT_KEY": "x",
               "HOME": "/root/somewhere-long"}
    secrets = secret_values(environ)
    assert set(secrets) == {"sk-live-0123456789", "hf_abcdefghijkl"}
    text = "error: key sk-live-0123456789 rejected at /root/somewhere-long (x)"
    assert scrub({"error": text}, secrets)["error"] == f"error: key {REDACTED} rejected at /root/somewhere-long (x)"


def test_store_writes_are_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_SECRET", "s3cr3t-value-42")
    store = RunStore.create(tmp_path, {"command": "--api-base http://u:s3cr3t-value-42@h/v1"}, run_id="r")
    store.append(rec(0, completion="the key is s3cr3t-value-42", error="401: s3cr3t-value-42"))
    store.write_summary({"note": "s3cr3t-value-42"})
    for path in store.path.rglob("*"):
        assert "s3cr3t-value-42" not in path.read_text()


def test_a_run_of_another_record_format_is_refused(tmp_path):
    store = RunStore.create(tmp_path, {"config": {}}, run_id="future")
    document = store.read_config()
    store.write_json("config.json", {**document, "record_format": RECORD_FORMAT + 1})
    with pytest.raises(ConfigurationError, match=f"format {RECORD_FORMAT + 1}; this postreason-dspy reads format 1"):
        RunStore.open("future", tmp_path)


def test_a_run_from_before_the_version_field_reads_as_version_1(tmp_path):
    store = RunStore.create(tmp_path, {"config": {}}, run_id="old")
    document = store.read_config()
    del document["record_format"], document["kind"]  # the kind marker came later still
    (store.path / "config.json").write_text(json.dumps(document))
    assert RunStore.open("old", tmp_path).read_config() == {"config": {}}


@pytest.mark.parametrize("content", ['{"config": {"models": ["m"]', "[1, 2]", "\xff"])
def test_a_corrupt_config_is_one_clear_error(tmp_path, content):
    store = RunStore.create(tmp_path, {"config": {}}, run_id="r")
    (store.path / "config.json").write_text(content, encoding="latin-1")
    with pytest.raises(ConfigurationError, match=r"config.json is corrupt"):
        RunStore.open("r", tmp_path)
    with pytest.raises(ConfigurationError, match=r"config.json is corrupt"):
        RunStore.latest(tmp_path)


def test_the_run_lock_refuses_a_second_holder(store):
    second = RunStore(store.path)
    with store.lock(), pytest.raises(ConfigurationError, match="in use by another `postreason eval`"), second.lock():
        pass
    with RunStore(store.path).lock():  # released: the next one gets it
        pass


def test_url_passwords_are_scrubbed_with_or_without_scheme():
    text = "cannot connect to alice:PASSW0RD@127.0.0.1:8765 (http://bob:hunter2@host/v1)"
    cleaned = scrub({"error": text}, secrets=[])["error"]
    assert "PASSW0RD" not in cleaned and "hunter2" not in cleaned
    assert cleaned == f"cannot connect to alice:{REDACTED}@127.0.0.1:8765 (http://bob:{REDACTED}@host/v1)"
    assert url_secrets("http://alice:PASSW0RD@127.0.0.1/v1") == ["PASSW0RD"] and url_secrets("http://h/v1") == []


def test_named_secrets_are_scrubbed_from_every_write(tmp_path):
    store = RunStore.create(tmp_path, {"config": {}}, run_id="r", extra_secrets=["key-abcdefgh-1234"])
    store.add_secrets(["pass-5678"])
    store.append(rec(0, error="401 for key-abcdefgh-1234 at pass-5678"))
    assert store.records()[0].error == f"401 for {REDACTED} at {REDACTED}"
