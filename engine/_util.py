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


class RunSetupError(ValueError):
    """The run cannot start or be used (bad run id, not a run, wrong state); nothing was written."""


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


_SECRET_QUERY_KEYS = ("secret", "token", "password", "passwd", "key", "credential", "signature")


def redact_uri(uri: str) -> str:
    """``uri`` with embedded credentials replaced by ``***`` (userinfo, secret query values).

    Used for every URI the engine prints, writes to ``run.json`` or logs to MLflow:
    ``https://u:pw@host/x?token=t`` becomes ``https://***@host/x?token=***``.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = [
            (k, "***" if any(s in k.lower() for s in _SECRET_QUERY_KEYS) else v) for k, v in pairs
        ]
        if redacted != pairs:
            query = urlencode(redacted, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri  # nothing secret: unchanged, not re-normalised
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_credentials(uri: str) -> bool:
    """Whether ``uri`` embeds a user, password, key or token."""
    return redact_uri(uri) != uri


def check_gpus(name: str, value: float) -> None:
    """A GPU request: 0, a fraction (GPU sharing) or a whole number of GPUs."""
    if value < 0 or (value > 1 and value != int(value)):
        raise FieldError(
            name, f"must be 0, a fraction in (0, 1] or a whole number of GPUs, got {value}"
        )
