"""Keep secrets out of run records: run directories get shared, committed and attached to issues.

Two nets, because either alone leaks: values under key-like names (api_key, Authorization...) are
replaced, and so is every occurrence of the value of an environment variable whose name looks like
a key, token, secret or password, wherever it appears (a URL, an error message, an echoed prompt).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# Field names whose values are credentials. Counts such as `completion_tokens` or `max_tokens` are not.
SECRET_FIELD = re.compile(
    r"^(?:.*[_-])?(?:api[_-]?key|apikey|secret|client[_-]?secret|password|passwd|authorization|credentials?"
    r"|private[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|bearer|token)$",
    re.IGNORECASE,
)
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("x", "local") are placeholders, and replacing them would mangle text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so no secret is left half-replaced)."""
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items() if SECRET_ENV.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of JSON-like `value` with credentials replaced by "[redacted]", by field name and by env value."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if isinstance(key, str) and SECRET_FIELD.match(key) and item is not None
                  else scrub(item, secrets))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    return value
