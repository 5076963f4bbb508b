"""Bounded structured logging through the host. The host keeps a few records
per evaluation and drops the rest, so log what explains a decision, not
every step.

The calls go through the `wit_world.imports.log` module at call time, so
`airlock_policy.testing` can record them in native tests.
"""

from wit_world.imports import log as _host
from wit_world.imports.log import Level


def log(level: Level, message: str, fields=()) -> None:
    """Log `message` with `fields`: `(name, value)` pairs or a mapping; values
    are sent as `str(value)`."""
    pairs = fields.items() if hasattr(fields, "items") else fields
    _host.log(level, message, [(name, str(value)) for name, value in pairs])


def debug(message: str, fields=()) -> None:
    log(Level.DEBUG, message, fields)


def info(message: str, fields=()) -> None:
    log(Level.INFO, message, fields)


def warn(message: str, fields=()) -> None:
    log(Level.WARN, message, fields)


def error(message: str, fields=()) -> None:
    log(Level.ERROR, message, fields)
