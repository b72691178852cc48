"""Bad input: the error a sample or a source the ingest cannot use raises, and ``on_bad``."""

from __future__ import annotations


class BadInputError(ValueError):
    """A sample or a source the ingest cannot use; the message names the file or row.

    Attributes:
        key: The sample's key (or the file) at fault.
        reason: What is wrong with it.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def skip_or_raise(exc: BadInputError, on_bad: str, skipped: list[tuple[str, str]]) -> None:
    """A bad sample under ``on_bad``: listed in ``skipped`` as ``(key, reason)`` for ``skip``.

    Raises:
        BadInputError: ``exc`` itself, for ``on_bad: error``.
    """
    if on_bad != "skip":
        raise exc
    skipped.append((exc.key, exc.reason))
