"""Call an exported prompt without DSPy: fill it, send it to an OpenAI-compatible server, parse the answer.

Standard library only. `postreason export --format python` writes this file's source with the
exported prompts in place of `EXPORT = {}`, so the script runs anywhere Python 3.9+ does; the
package uses the same functions to render the `messages` export, so both stay byte-identical to
what DSPy sends (tests/test_export_fidelity.py checks it against the recorded request).

    python prompts.py --base-url http://127.0.0.1:8765/v1 --input question="What is 6 * 7?"
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import sys
import urllib.request
from typing import Any

EXPORT: dict[str, Any] = {}  # the generated script carries the exported prompts here

SLOT = re.compile(r"\{\{(\w+)\}\}")
CHAT_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")


def predictor(export: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The exported predictor called `name`; without a name, the only one, or else the last one."""
    found = export["predictors"]
    if name is None:
        return found[-1]
    for entry in found:
        if entry["name"] == name:
            return entry
    raise KeyError(f"no predictor {name!r}; the export has {[entry['name'] for entry in found]}")


def serialize(value: Any, kind: str) -> str:
    """An input value as DSPy writes it into the prompt: text as is, anything else as compact JSON or str()."""
    if isinstance(value, str):
        return value
    if kind == "text":
        raise TypeError(f"a text input takes a string, not {type(value).__name__}")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_messages(entry: dict[str, Any], inputs: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages of predictor `entry` for `inputs`: every `{{field}}` slot filled in one pass."""
    kinds = {field["name"]: field["serialize"] for field in entry["inputs"]}
    missing = sorted(set(kinds) - set(inputs))
    if missing:
        raise KeyError(f"missing inputs: {', '.join(missing)}")
    values = {name: serialize(inputs[name], kind) for name, kind in kinds.items()}

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)] if match.group(1) in values else match.group(0)

    return [{"role": m["role"], "content": SLOT.sub(fill, m["content"])} for m in entry["messages"]]


def _chat_sections(text: str) -> dict[str, str]:
    """ChatAdapter's parse: a line holding `[[ ## name ## ]]` opens a field; the first of each name counts."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = CHAT_HEADER.match(line.strip())
        if match:
            rest = line.strip()[match.end():].strip()
            sections.append((match.group(1), [rest] if rest else []))
        else:
            sections[-1][1].append(line)
    found: dict[str, str] = {}
    for name, lines in sections:
        if name is not None and name not in found:
            found[name] = "\n".join(lines).strip()
    return found


def _xml_sections(text: str, names: list[str]) -> dict[str, str]:
    found = {}
    for name in names:
        match = re.search(rf"<{name}>(.*?)</{name}>", text, re.DOTALL)
        if match:
            found[name] = html.unescape(match.group(1).strip())  # the adapter escapes & and < in text fields
    return found


def _plain_sections(text: str, markers: dict[str, str]) -> dict[str, str]:
    """PlainTextAdapter's parse: a line starting with a field's `Label:` (any case, markdown bold allowed)
    opens that field, once; a later label line of a field already read stays text of the current one."""
    decoration = r"[\s*_#]*"
    by_label = {marker[:-1].lower(): name for name, marker in markers.items()}
    labels = "|".join(re.escape(label) for label in sorted(by_label, key=len, reverse=True))
    pattern = re.compile(rf"^{decoration}({labels}){decoration}:{decoration}", re.IGNORECASE)
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = pattern.match(line)
        name = by_label[match.group(1).lower()] if match else None
        if match and name not in found:
            current = name
            rest = line[match.end():].strip()
            found[name] = [rest] if rest else []
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def parse_answer(entry: dict[str, Any], completion: str) -> dict[str, Any]:
    """The answer fields (and the rationale, when it was generated) of `completion`; typed fields JSON-decoded."""
    outputs = entry["outputs"]
    names = [field["name"] for field in outputs]
    if entry["parse"] == "plain":
        found = _plain_sections(completion, entry["output_markers"])
    elif entry["parse"] == "xml":
        found = _xml_sections(completion, names)
    else:
        found = _chat_sections(completion)
    missing = [name for name in entry["answer_fields"] if name not in found]
    if missing:
        raise ValueError(f"the completion holds no {', '.join(missing)} field: {completion[:300]!r}")
    parsed: dict[str, Any] = {}
    for field in outputs:
        if field["name"] not in found:
            continue
        text = found[field["name"]]
        if field["type"] != "str":
            with contextlib.suppress(ValueError):  # a typed value that is not JSON stays text
                text = json.loads(text)
        parsed[field["name"]] = text
    return parsed


def request_body(entry: dict[str, Any], inputs: dict[str, Any], model: str, full: bool = False) -> dict[str, Any]:
    """The /chat/completions request: the rendered messages, the export's settings, answer-only stops."""
    body: dict[str, Any] = {"model": model, "messages": render_messages(entry, inputs), **entry["settings"]}
    if entry["answer_only_stops"] and not full:
        body["stop"] = entry["answer_only_stops"]
    return body


def complete(base_url: str, body: dict[str, Any], api_key: str | None = None, timeout: float = 600.0) -> str:
    """POST `body` to `base_url`/chat/completions and return the assistant message's text."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode("utf-8"), headers=headers
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read().decode("utf-8"))
    return reply["choices"][0]["message"]["content"] or ""


def call(
    inputs: dict[str, Any],
    *,
    base_url: str,
    model: str | None = None,
    api_key: str | None = None,
    predictor_name: str | None = None,
    full: bool = False,
    export: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One predictor call: render, send (answer-only unless `full`), parse. Returns the parsed fields."""
    export = export or EXPORT
    entry = predictor(export, predictor_name)
    body = request_body(entry, inputs, model or export["served_model"], full=full)
    return parse_answer(entry, complete(base_url, body, api_key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer with an exported postreason prompt.")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1"),
                        help="an OpenAI-compatible server (default: $OPENAI_BASE_URL or the local postreason server)")
    parser.add_argument("--model", help="model name at that server (default: the one the program was tuned with)")
    parser.add_argument("--predictor", help="which predictor to call (default: the last one)")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="an input field")
    parser.add_argument("--inputs-json", help="all inputs as one JSON object (or - for stdin)")
    parser.add_argument("--full", action="store_true", help="also generate the justification")
    args = parser.parse_args(argv)
    inputs: dict[str, Any] = {}
    if args.inputs_json:
        inputs.update(json.loads(sys.stdin.read() if args.inputs_json == "-" else args.inputs_json))
    for item in args.input:
        name, _, value = item.partition("=")
        inputs[name] = value
    answer = call(inputs, base_url=args.base_url, model=args.model, api_key=os.environ.get("OPENAI_API_KEY"),
                  predictor_name=args.predictor, full=args.full)
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
