"""Typed errors: every failure a user can cause or meet gets one class and a clear message."""


class PostReasonError(Exception):
    """Base class of every error this package raises on purpose."""


class UnsupportedAdapterError(PostReasonError):
    """The active DSPy adapter cannot do what was asked (e.g. answer-only decoding with JSON output)."""


class CompletionParseError(PostReasonError):
    """The model's completion could not be parsed into the signature's output fields.

    `completion` holds the raw text so callers can record or inspect it.
    """

    def __init__(self, message: str, completion: str | None = None):
        super().__init__(message)
        self.completion = completion


class StateMismatchError(PostReasonError):
    """A saved program state does not fit the program it is loaded into."""


class ConfigurationError(PostReasonError):
    """Bad user input: an unknown model, benchmark or strategy, a missing file, an unreachable server."""


class DatasetNotFoundError(ConfigurationError):
    """No source on this machine holds a benchmark's data; the message names every way to supply it."""


class LocalServerError(PostReasonError):
    """The embedded local model could not be installed, started or reached."""


class BusyError(ConfigurationError):
    """Another process holds the lock on a run folder (or search folder) this one was asked to work in."""


class SettingsChangedError(ConfigurationError):
    """A run folder (or checkpoint) is asked to go on with settings other than those it was made with."""
