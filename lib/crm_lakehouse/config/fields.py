"""Mapping entries: where each canonical field (or declared attribute) of a source record comes
from — a column, a constant, a Spark SQL expression, a value map, or a generated key — parsed
and checked (everything but what only Spark can judge, see :mod:`crm_lakehouse.mapping`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from crm_lakehouse.config.checks import did_you_mean, reject_unknown, typed
from crm_lakehouse.entities import INLINE_CUSTOMER_FIELDS, KINDS, STRING
from crm_lakehouse.errors import ConfigError

GENERATED = {"line_in_order": "line_number"}


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field (or attribute) of a source record comes from."""

    column: str | None = None
    value: str | None = None
    expr: str | None = None
    # Value map (compared trimmed and case-insensitively) and what an unmapped value becomes.
    values: tuple[tuple[str, str | None], ...] = ()
    default: str | None = None
    has_default: bool = False
    generated: str | None = None
    kind: str = STRING          # attributes: the declared type the text must parse as
    where: str = ""             # "file: key", for messages about this entry

    @property
    def describe(self) -> str:
        if self.expr is not None:
            return self.expr
        if self.column is not None:
            return self.column
        return f"{self.generated or repr(self.value)}"


def parse_mapping(raw: dict, columns: tuple[str, ...], fields: dict[str, str], entity: str, where: str,
             key: str) -> dict[str, FieldSpec]:
    mapping: dict[str, FieldSpec] = {}
    for name, target in raw.items():
        name = str(name)
        if isinstance(target, dict):
            canonical, spec = name, field_spec(target, columns, where, f"{key}.{name}")
        elif isinstance(target, str):
            if name not in columns:
                raise ConfigError(f"mapping names column '{name}', which is not in columns", where=f"{where}: {key}",
                                  fix=f"add it to columns or correct the name{did_you_mean(name, list(columns))}")
            canonical, spec = target, FieldSpec(column=name, where=f"{where}: {key}.{name}")
        else:
            raise ConfigError(f"mapping entry '{name}' is {target!r}", where=f"{where}: {key}.{name}",
                              fix="write `SourceColumn: canonical_field` or `canonical_field: {column|value|expr: ...}`")
        if canonical not in fields:
            hint = " (customer_* fields need `customers: inline`)" if canonical in INLINE_CUSTOMER_FIELDS \
                and entity == "orders" else ""
            raise ConfigError(f"mapping sends '{name}' to unknown {entity} field '{canonical}'{hint}",
                              where=f"{where}: {key}.{name}",
                              fix=f"use one of {', '.join(fields)}{did_you_mean(canonical, list(fields))}")
        if canonical in mapping:
            raise ConfigError(f"{canonical} is mapped twice", where=f"{where}: {key}",
                              fix="give each canonical field one column, constant or expression")
        if spec.generated and GENERATED[spec.generated] != canonical:
            raise ConfigError(f"generated: {spec.generated} is for {GENERATED[spec.generated]}, not {canonical}",
                              where=spec.where, fix=f"use it for {GENERATED[spec.generated]} only")
        mapping[canonical] = spec
    return mapping


def field_spec(raw: dict, columns: tuple[str, ...], where: str, key: str, *, kind: str = STRING) -> FieldSpec:
    reject_unknown(raw, {"column", "value", "expr", "values", "default", "generated", "type"}, where, key + ".")
    origins = [k for k in ("column", "value", "expr", "generated") if k in raw]
    if len(origins) != 1:
        raise ConfigError(f"'{key}' gives {', '.join(origins) or 'no origin'}", where=f"{where}: {key}",
                          fix="give exactly one of column, value, expr, generated")
    at = f"{where}: {key}"
    column = raw.get("column")
    if column is not None and str(column) not in columns:
        raise ConfigError(f"column '{column}' is not in columns", where=f"{at}.column",
                          fix=f"add it to columns or correct the name{did_you_mean(str(column), list(columns))}")
    expr = raw.get("expr")
    if expr is not None and (not isinstance(expr, str) or not expr.strip()):
        raise ConfigError(f"expr is {expr!r}", where=f"{at}.expr", fix="give a Spark SQL expression as a string")
    generated = raw.get("generated")
    if generated is not None and generated not in GENERATED:
        raise ConfigError(f"unknown generated value '{generated}'", where=f"{at}.generated",
                          fix=f"use one of {', '.join(GENERATED)}")
    values = raw.get("values")
    if (values is not None or "default" in raw) and column is None and expr is None:
        raise ConfigError("values and default map a column's or expression's text", where=f"{at}",
                          fix="add column: or expr:, or give a constant with value:")
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"values is {values!r}", where=f"{at}.values", fix="give a mapping {delivered: canonical}")
    pairs: list[tuple[str, str | None]] = []
    for delivered, canonical in (values or {}).items():
        for spelling in _spellings(delivered):
            pairs.append((spelling, _value_text(canonical)))
    return FieldSpec(column=str(column) if column is not None else None,
                     value=_value_text(raw["value"]) if "value" in raw else None,
                     expr=str(expr).strip() if expr is not None else None, values=tuple(pairs),
                     default=_value_text(raw.get("default")), has_default="default" in raw,
                     generated=str(generated) if generated is not None else None, kind=kind, where=at)


def _spellings(delivered: Any) -> list[str]:
    # YAML 1.1 reads an unquoted Yes/No/On/Off as a boolean: match what the user most likely wrote.
    if delivered is True:
        return ["true", "yes", "on", "y"]
    if delivered is False:
        return ["false", "no", "off", "n"]
    return [str(delivered).strip().lower()]


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_attributes(raw: Any, columns: tuple[str, ...], entity: str, where: str, key: str) -> dict[str, FieldSpec]:
    if raw is None:
        return {}
    if entity != "customers":
        raise ConfigError(f"attributes are not for {entity} sources", where=f"{where}: {key}",
                          fix="declare extra attributes on customers sources")
    typed(raw, dict, where, key)
    attributes = {}
    for name, spec in raw.items():
        name = str(name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(f"attribute name '{name}'", where=f"{where}: {key}.{name}",
                              fix="use lower-case letters, digits and underscores (analysts write attributes['name'])")
        if isinstance(spec, str):
            spec = {"column": spec}
        typed(spec, dict, where, f"{key}.{name}")
        kind = str(spec.get("type") or STRING)
        if kind not in KINDS:
            raise ConfigError(f"attribute type '{kind}'", where=f"{where}: {key}.{name}.type",
                              fix=f"use one of {', '.join(KINDS)}{did_you_mean(kind, list(KINDS))}")
        if spec.get("generated") is not None:
            raise ConfigError("generated values are for order keys", where=f"{where}: {key}.{name}",
                              fix="give column, value or expr")
        attributes[name] = field_spec({k: v for k, v in spec.items() if k != "type"}, columns, where,
                                       f"{key}.{name}", kind=kind)
    return attributes
