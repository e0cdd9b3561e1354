"""Loading a job: plain data -> validated :class:`RunConfig`, with layered overrides.

Layers, later wins: dataclass defaults -> job YAML -> ``QDIST_`` environment variables
(``QDIST_FEATURE_MAP__QUBITS=8``: section and field joined by a double underscore, the value
parsed as YAML) -> explicit overrides (CLI flags). Unknown keys and wrong types are errors that
name the field, the value found and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from qdist.config.specs import RunConfig, _to_plain, fail
from qdist.errors import ConfigError

__all__ = ["config_from_dict", "env_overrides", "load_config"]

_ENV_PREFIX = "QDIST_"


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type hint ``tp`` and convert it; raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _convert(rest[0], value, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise fail(path, "one of " + ", ".join(repr(c) for c in choices), value,
                        f"Pick one of {list(choices)}.")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail(path, "a mapping (a YAML section)", value, "Write it as 'key: value' lines.")
        return _build(tp, value, path)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise fail(path, "a list", value, "Write it as [a, b, ...].")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise fail(path, "a mapping", value, "Write it as 'name: value' lines.")
        return {_convert(key_tp, k, f"{path}.{k}"): _convert(val_tp, v, f"{path}.{k}")
                for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(path, "true or false", value, "Write true or false.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(path, "an integer", value, "Write a whole number without quotes.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(path, "a number", value, "Write a number without quotes.")
        if not math.isfinite(value):
            raise fail(path, "a finite number", value, "Write a finite number.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail(path, "a string", value, "Quote it if YAML read it as something else.")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a programming error


def _build(cls: Any, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        where = f"section '{prefix}'" if prefix else "the top level"
        raise ConfigError(
            f"Unknown job-file key(s) {unknown} in {where}. Known keys: {sorted(names)}. "
            "Fix the spelling or remove the key."
        )
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (a parsed job file)."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"A job file must be a YAML mapping of sections; got {type(data).__name__}. "
            "Start it with e.g. 'name: my-job'."
        )
    result: RunConfig = _build(RunConfig, data, "")
    return result


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set '{dotted}': '{part}' is not a section.")
        node = child
    node[parts[-1]] = value


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``QDIST_SECTION__FIELD=value`` variables as dotted overrides (values parsed as YAML)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(_ENV_PREFIX) or "__" not in key:
            continue
        dotted = key[len(_ENV_PREFIX):].lower().replace("__", ".")
        out[dotted] = yaml.safe_load(raw)
    return out


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """Load a job file (or a mapping) with environment and explicit overrides applied.

    ``overrides`` maps dotted field names (``"output.dir"``) to values and wins over the
    environment, which wins over the file. Relative ``data.path``, ``data.targets_path`` and
    ``data.tables`` paths are resolved against the job file's folder.
    """
    base_dir: Path | None = None
    if isinstance(source, Mapping):
        tree: Any = _to_plain(dict(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"Job file {str(path)!r} does not exist. Check the path.")
        base_dir = path.resolve().parent
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"Job file {str(path)!r} is not valid YAML: {exc}. Fix the syntax at that line."
            ) from exc
        if not isinstance(tree, dict):
            raise ConfigError(
                f"Job file {str(path)!r} must be a YAML mapping of sections; got "
                f"{type(tree).__name__}. Start it with e.g. 'name: my-job'."
            )
    for dotted, value in {**env_overrides(environ), **(overrides or {})}.items():
        _set_dotted(tree, dotted, value)
    for section, key in (("preprocess", "frozen_from"), ("tiles", "cache")):
        node = tree.get(section)
        if base_dir is not None and isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = _resolve(base_dir, node[key])
    data = tree.get("data")
    if base_dir is not None and isinstance(data, dict):
        for key in ("path", "targets_path"):
            if isinstance(data.get(key), str):
                data[key] = _resolve(base_dir, data[key])
        if isinstance(data.get("tables"), dict):
            data["tables"] = {k: _resolve(base_dir, v) if isinstance(v, str) else v
                              for k, v in data["tables"].items()}
    return config_from_dict(tree)


def _resolve(base_dir: Path, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else base_dir / p)
