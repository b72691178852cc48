"""Pieces every spec section shares: the error types, name rules and resource checks."""

from __future__ import annotations

import re

from engine._util import FieldError, check_gpus

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # spec and model labels
SPEC_VERSION = 1  # the spec format this engine reads

CREDENTIALS_IN_URI = (
    "holds credentials; give them in the environment instead (e.g. AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY for s3://): specs and output locations are logged"
)

__all__ = [
    "CREDENTIALS_IN_URI",
    "NAME_PATTERN",
    "SPEC_VERSION",
    "FieldError",
    "SpecError",
    "check_gpus",
]


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field and allowed values."""
