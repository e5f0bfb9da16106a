"""Numeric settings read from the environment (`GSVD_*`): a bad value is logged and the default used, so a
typo in a deployment's environment never stops the engine."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def env_number(name: str, default: float) -> float:
    """The non-negative number in environment variable `name` (negative: 0), or `default` when it is unset or
    not a number (logged)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
