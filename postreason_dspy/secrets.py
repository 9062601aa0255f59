"""Keep secrets out of messages, shown commands and run records: run folders get shared, committed and
attached to issues, and a resume line is copied into chats.

`redact(url)` hides the password of one URL (a model server, an Optuna storage) but keeps its user, so a
shown command still says whose password to supply. `scrub(value)` cleans whole records with three nets,
because any one alone leaks: values under key-like names (api_key, Authorization...) are replaced; so is
every occurrence of the value of an environment variable whose name looks like a key, token, secret or
password, and of any secret the caller names (an LM's API key), wherever it appears (a URL, an error
message, an echoed prompt); and the password of every `user:password@host` in any string (a connection
error quotes the URL it failed on, sometimes without its scheme).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"  # what stands for a secret in messages, records and shown commands

# Field names whose values are credentials. Counts such as `completion_tokens` or `max_tokens` are not.
SECRET_FIELD = re.compile(
    r"^(?:.*[_-])?(?:api[_-]?key|apikey|secret|client[_-]?secret|password|passwd|authorization|credentials?"
    r"|private[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|bearer|token)$",
    re.IGNORECASE,
)
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# user:password@host, with or without a scheme in front: the password is group "password".
# The user part starts a word (after a space, "/", a quote or a bracket), which keeps the search linear.
URL_CREDENTIALS = re.compile(
    r"(?<![^\s/'\"(<\[])(?P<user>[^\s/:@'\"()<>\[\]]+):(?P<password>[^\s/@'\"()<>]+)@(?=[A-Za-z0-9\[])"
)
MIN_SECRET_LENGTH = 8  # shorter values ("x", "local") are placeholders, and replacing them would mangle text


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by "[redacted]", for messages, records and resume commands:
    the user name stays, so a shown command says whose password to supply."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:{REDACTED}@{host}").geturl()


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so no secret is left half-replaced)."""
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items() if SECRET_ENV.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def url_secrets(url: str | None) -> list[str]:
    """The password of a URL: to scrub even where the URL appears in pieces."""
    if not url:
        return []
    found = URL_CREDENTIALS.search(url)
    return [found["password"]] if found else []


def scrub_text(text: str, secrets: list[str]) -> str:
    """`text` without `secrets` and without the password of any user:password@host in it."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return URL_CREDENTIALS.sub(lambda m: f"{m['user']}:{REDACTED}@", text) if "@" in text else text


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of JSON-like `value` with credentials replaced by "[redacted]": by field name, by value
    (`secrets`, default: the environment's), and URL passwords."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if isinstance(key, str) and SECRET_FIELD.match(key) and item is not None
                  else scrub(item, secrets))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    return value
