"""Reading and checking YAML: every problem is a :class:`ConfigError` naming file, key and fix."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from crm_lakehouse.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError("config file not found", where=str(path), fix="restore it from the repository")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML ({problem})", where=f"{path}{at}", fix="correct the YAML syntax there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping at the top level", where=str(path), fix="use `key: value` lines")
    return data


def deep_merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def interpolate(value: Any, where: str, key: str) -> Any:
    """``${VAR}`` (must be set) and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, where, f"{key}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, where, f"{key}[{i}].") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ and os.environ[name] != "":
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", where=f"{where}: {key.rstrip('.')}",
                          fix=f"export {name}=... before running, or give a default as ${{{name}:-value}}")

    return _ENV_REF.sub(substitute, value)


def section(raw: dict, name: str, where: str) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"section '{name}' is missing or not a mapping", where=f"{where}: {name}",
                          fix=f"add `{name}:` with its keys (see the repository's conf/base.yaml)")
    return value


def take(raw: dict, name: str, kind: Any, where: str, key: str) -> Any:
    """``raw[name]``, which must be there and of ``kind``."""
    if name not in raw or raw[name] is None:
        raise ConfigError(f"required key '{key}{name}' is missing", where=f"{where}: {key}{name}", fix=f"add `{name}:`")
    return typed(raw[name], kind, where, f"{key}{name}")


def typed(value: Any, kind: Any, where: str, key: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, (int, float)):
        wanted = getattr(kind, "__name__", "number")
        raise ConfigError(f"'{key}' is {value!r}, expected {wanted}", where=f"{where}: {key}", fix=f"give a {wanted}")
    return value


def share(raw: dict, name: str, default: float, where: str, key: str) -> float:
    """A share between 0 (exclusive) and 1 (inclusive), e.g. ``max_shrink: 0.5``."""
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"'{key}{name}' is {value!r}", where=f"{where}: {key}{name}",
                          fix="give a share above 0 and at most 1, e.g. 0.5 (1 turns the check off)")
    return float(value)


def reject_unknown(raw: dict, allowed: set[str], where: str, key: str) -> None:
    for name in raw:
        if name not in allowed:
            raise ConfigError(f"unknown key '{key}{name}'", where=f"{where}: {key}{name}",
                              fix=f"remove it or use one of: {', '.join(sorted(allowed))}{did_you_mean(str(name), sorted(allowed))}")


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def timezone(name: str, where: str, key: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone '{name}'", where=f"{where}: {key}",
                          fix="use an IANA name such as Europe/Berlin or Asia/Shanghai") from None
    return name


def absolute(path: str) -> str:
    if "://" in path:
        return path.rstrip("/")
    return str(Path(path).expanduser().resolve())
