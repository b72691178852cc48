"""Small helpers shared across the engine (no heavy imports)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FieldError(ValueError):
    """A bad value in a named field; spec loaders prefix the field's full path.

    Attributes:
        field: Dotted field path, e.g. ``"replicas.lr"``.
        reason: What is wrong and what is allowed.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def prefixed(self, prefix: str) -> FieldError:
        """Return the same error with ``prefix.`` in front of its field path."""
        return FieldError(f"{prefix}.{self.field}" if prefix else self.field, self.reason)


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    """Build the error for an unknown registry name, listing close matches and all names.

    Args:
        kind: What was looked up, e.g. ``"model"`` or ``"score"``.
        name: The name that was not found.
        valid: All valid names.

    Returns:
        A ValueError whose message names the bad value, suggests close matches and
        lists the valid names.
    """
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(names)}")
