"""The one error helper every spec uses: name the field, what it must be, what was found, the fix."""

from __future__ import annotations

from qdist.errors import ConfigError

__all__ = ["fail"]


def fail(path: str, expected: str, value: object, fix: str) -> ConfigError:
    return ConfigError(
        f"The job-file field '{path}' must be {expected}; got {value!r}. {fix}"
    )
