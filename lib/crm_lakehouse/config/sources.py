"""``conf/sources/*.yaml``: one file per region, one entry per source (region x channel x entity).

A source says how to read its files (format, reader options, columns) and how each canonical
field of its entity (:mod:`crm_lakehouse.entities`) gets its value. A mapping entry is either
``Column: field`` (the source's column holds the field) or ``field: {...}`` with one of

- ``{column: C}`` — the column C (the same column may feed several fields);
- ``{value: X}`` — a constant (``currency: {value: GBP}``);
- ``{expr: "..."}`` — a Spark SQL expression over the source's columns;
- ``{column: C, values: {EIRE: IE}, default: X}`` — a value map (case-insensitive), also over
  an ``expr``; without ``default`` a value the map does not name passes through unchanged;
- ``{generated: line_in_order}`` — for ``line_number``: the row's position within its order.

Everything is checked here, before Spark starts, except what only Spark can judge (expression
syntax and column references), which :mod:`crm_lakehouse.mapping` checks before any row is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crm_lakehouse.config.checks import did_you_mean, interpolate, read_yaml, reject_unknown, share, take, timezone, typed
from crm_lakehouse.config.fields import FieldSpec, parse_attributes, parse_mapping
from crm_lakehouse.entities import CDC, CDC_OPERATIONS, CDC_REQUIRED, ENTITIES, INCREMENTAL, INLINE_CUSTOMER_FIELDS, SNAPSHOT
from crm_lakehouse.errors import ConfigError

# csv, JSON lines, Parquet, and text read by position: fixed-width columns or whitespace-separated fields.
FORMATS = ("csv", "json", "parquet", "fixed_width", "whitespace")
TEXT_FORMATS = ("fixed_width", "whitespace")
SCHEMA_EVOLUTION_POLICIES = ("quarantine", "fail")
SEQUENCE_FROM = ("arrival", "file_name")
NEGATIVE_QUANTITY = ("quarantine", "return")
DEFAULT_MAX_SHRINK = 0.5

_SOURCE_KEYS = {
    "name", "channel", "entity", "format", "path", "options", "columns", "mapping", "date_format",
    "timestamp_format", "decimal_separator", "timezone", "currency", "phone_country", "primary_key", "cdc",
    "customer_source", "schema_evolution", "mode", "sequence", "max_shrink", "customers", "negative_quantity",
    "attributes", "shares_ids_with", "widths", "max_quarantined_share",
}


@dataclass(frozen=True)
class CdcConfig:
    """How a change feed marks its operation and orders its events."""

    operation_column: str
    sequence_column: str
    operations: dict[str, str]  # canonical operation -> the code this source writes


@dataclass(frozen=True)
class SequenceSpec:
    """How a snapshot or incremental source orders its files: their export time.

    ``arrival``: the file's modification time in the landing folder; ``file_name``: the text the
    pattern's one capture group takes from the file name, parsed with ``format`` in the source's
    time zone.
    """

    source: str = "arrival"
    pattern: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class SourceConfig:
    """One region x channel x entity feed and everything needed to read and map it."""

    name: str
    region: str
    channel: str
    entity: str
    format: str
    path: str
    options: dict[str, str]
    columns: tuple[str, ...]
    mapping: dict[str, FieldSpec]  # canonical field -> where its value comes from
    date_format: str
    timestamp_format: str
    decimal_separator: str
    timezone: str
    currency: str
    phone_country: str
    primary_key: tuple[str, ...]
    cdc: CdcConfig | None
    defined_in: str
    # For orders: the customer source whose ids the orders carry (same region and channel
    # unless the YAML names another one; the source itself when its customers are inline;
    # None for a channel without a customer master).
    customer_source: str | None = None
    # A file whose columns differ from ``columns`` (extra, missing, renamed; for CSV also a
    # header in the wrong encoding): "quarantine" lands it with the problem noted and silver
    # quarantines its rows; "fail" refuses it, stopping this source until the file is replaced.
    schema_evolution: str = "quarantine"
    # customers / products: cdc (a change feed), snapshot (each file the full current state) or
    # incremental (each file the records changed since the last one); None for event entities.
    mode: str | None = None
    sequence: SequenceSpec = field(default_factory=SequenceSpec)
    max_shrink: float = DEFAULT_MAX_SHRINK
    # orders: the lines carry their customer (id and optionally customer_* fields).
    inline_customers: bool = False
    # orders: "return" keeps a line with a negative quantity as a return; "quarantine" rejects it.
    negative_quantity: str = "quarantine"
    attributes: dict[str, FieldSpec] = field(default_factory=dict)
    # Sources whose customer numbers name the same people as this one's (billing and service).
    shares_ids_with: tuple[str, ...] = ()
    widths: tuple[int, ...] = ()
    max_quarantined_share: float | None = None

    def column_for(self, canonical: str) -> str | None:
        """The source's own column holding a canonical field as delivered, if there is one."""
        spec = self.mapping.get(canonical)
        return spec.column if spec is not None and spec.expr is None else None

    def field_of_column(self, column: str) -> str | None:
        """The canonical field a column holds unchanged (plain mappings only), if any."""
        for name, spec in self.mapping.items():
            if spec.column == column and spec.expr is None and not spec.values and not spec.has_default:
                return name
        return None

    @property
    def has_customer_records(self) -> bool:
        """Whether the source delivers customer records (a master, or a log with inline customers)."""
        return self.entity == "customers" or self.inline_customers


def load_sources(folder: Path, regions: dict, channels: tuple[str, ...]) -> tuple[SourceConfig, ...]:
    if not folder.is_dir():
        raise ConfigError("no sources folder", where=str(folder), fix="create conf/sources/ with one YAML per region")
    sources: list[SourceConfig] = []
    seen: dict[str, str] = {}
    for file in sorted(folder.glob("*.yaml")):
        raw = interpolate(read_yaml(file), str(file), "")
        where = str(file)
        reject_unknown(raw, {"region", "defaults", "sources"}, where, "")
        region_code = take(raw, "region", str, where, "")
        if region_code not in regions:
            raise ConfigError(f"region '{region_code}' is not declared", where=f"{where}: region",
                              fix=f"use one of {', '.join(regions)}{did_you_mean(region_code, list(regions))} "
                                  "or add it under regions: in conf/base.yaml")
        region = regions[region_code]
        defaults = raw.get("defaults") or {}
        reject_unknown(defaults, _SOURCE_KEYS - {"name"}, where, "defaults.")
        entries = take(raw, "sources", list, where, "")
        for index, entry in enumerate(entries):
            key = f"sources[{index}]."
            if not isinstance(entry, dict):
                raise ConfigError("each source must be a mapping", where=f"{where}: sources[{index}]",
                                  fix="see conf/sources/eu.yaml for the shape")
            reject_unknown(entry, _SOURCE_KEYS, where, key)
            source = _source({**defaults, **entry}, region, channels, where, key)
            if source.name in seen:
                raise ConfigError(f"source name '{source.name}' is used twice", where=f"{where}: {key}name",
                                  fix=f"rename one; the other is in {seen[source.name]}")
            seen[source.name] = where
            sources.append(source)
    if not sources:
        raise ConfigError("no sources declared", where=str(folder), fix="add a YAML file with a sources: list")
    return tuple(_link(sources))


def _link(sources: list[SourceConfig]) -> list[SourceConfig]:
    """Orders name their customer master explicitly, carry it inline, or it is the same region's
    and channel's; shared customer numbers name sources that deliver customer records."""
    masters = {s.name: s for s in sources if s.entity == "customers"}
    by_place = {(s.region, s.channel): s.name for s in masters.values()}
    record_sources = {s.name for s in sources if s.has_customer_records}
    linked = []
    for source in sources:
        if source.entity == "orders" and not source.inline_customers:
            if source.customer_source and source.customer_source not in masters:
                raise ConfigError(f"customer_source '{source.customer_source}' is not a customers source",
                                  where=f"{source.defined_in}: {source.name}.customer_source",
                                  fix=f"use one of {', '.join(sorted(masters))}"
                                      f"{did_you_mean(source.customer_source, sorted(masters))}, "
                                      "or declare `customers: inline` when the lines carry their customers")
            source = replace(source, customer_source=source.customer_source or by_place.get((source.region, source.channel)))
        for other in source.shares_ids_with:
            if other not in record_sources or other == source.name:
                raise ConfigError(f"shares_ids_with names '{other}', which delivers no other customer records",
                                  where=f"{source.defined_in}: {source.name}.shares_ids_with",
                                  fix=f"name customers sources (or orders with inline customers): "
                                      f"{', '.join(sorted(record_sources - {source.name}))}"
                                      f"{did_you_mean(other, sorted(record_sources))}")
        linked.append(source)
    return linked


def _source(raw: dict, region, channels: tuple[str, ...], where: str, key: str) -> SourceConfig:
    name = take(raw, "name", str, where, key)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"source name '{name}' is not a valid table name", where=f"{where}: {key}name",
                          fix="use lower-case letters, digits and underscores (it becomes bronze.<name>)")
    channel = take(raw, "channel", str, where, key)
    if channel not in channels:
        raise ConfigError(f"unknown channel '{channel}'", where=f"{where}: {key}channel",
                          fix=f"use one of {', '.join(channels)}{did_you_mean(channel, list(channels))} "
                              "or add it to channels: in conf/base.yaml")
    entity = take(raw, "entity", str, where, key)
    if entity not in ENTITIES:
        raise ConfigError(f"unknown entity '{entity}'", where=f"{where}: {key}entity",
                          fix=f"use one of {', '.join(ENTITIES)}{did_you_mean(entity, list(ENTITIES))}")
    spec = ENTITIES[entity]
    fmt = take(raw, "format", str, where, key)
    if fmt not in FORMATS:
        raise ConfigError(f"unsupported format '{fmt}'", where=f"{where}: {key}format",
                          fix=f"use one of {', '.join(FORMATS)}{did_you_mean(fmt, list(FORMATS))}")
    columns = tuple(str(c) for c in take(raw, "columns", list, where, key))
    if len(set(columns)) != len(columns):
        raise ConfigError("a column is listed twice", where=f"{where}: {key}columns", fix="list each column once")
    widths = _widths(raw, fmt, columns, where, key)
    inline = _inline_customers(raw, entity, where, key)
    allowed = dict(spec.fields)
    if not inline:
        allowed = {f: k for f, k in allowed.items() if f not in INLINE_CUSTOMER_FIELDS}
    mapping = parse_mapping(take(raw, "mapping", dict, where, key), columns, allowed, entity, where, key + "mapping")
    mode = _mode(raw, spec, where, key)
    cdc = _cdc(raw.get("cdc"), columns, mode == CDC, where, key)
    required = list(spec.required) + (list(CDC_REQUIRED) if mode == CDC else [])
    if entity == "orders":
        if "unit_price" not in mapping and "line_total" not in mapping:
            required.append("unit_price or line_total")
        if inline:
            required.append("source_customer_id")
    missing = [f for f in required if not any(part in mapping for part in f.split(" or "))]
    if missing:
        raise ConfigError(f"required {entity} fields not mapped: {', '.join(missing)}", where=f"{where}: {key}mapping",
                          fix="map a source column, a constant {value: ...} or an expression {expr: ...} to each")
    primary_key = tuple(str(c) for c in (raw.get("primary_key") or [
        spec_.column for f, spec_ in mapping.items() if f in spec.key and spec_.column and spec_.expr is None]))
    for column in primary_key:
        if column not in columns:
            raise ConfigError(f"primary_key column '{column}' is not in columns", where=f"{where}: {key}primary_key",
                              fix=f"use source column names{did_you_mean(column, list(columns))}")
    schema_evolution = str(raw.get("schema_evolution") or "quarantine")
    if schema_evolution not in SCHEMA_EVOLUTION_POLICIES:
        raise ConfigError(f"unknown schema_evolution policy '{schema_evolution}'", where=f"{where}: {key}schema_evolution",
                          fix=f"use one of: {', '.join(SCHEMA_EVOLUTION_POLICIES)}")
    negative = str(raw.get("negative_quantity") or "quarantine")
    if negative not in NEGATIVE_QUANTITY or (entity != "orders" and "negative_quantity" in raw):
        raise ConfigError(f"negative_quantity '{negative}'" + ("" if entity == "orders" else f" on {entity}"),
                          where=f"{where}: {key}negative_quantity",
                          fix="on an orders source, use `return` (a negative quantity is a return) or `quarantine`")
    attributes = parse_attributes(raw.get("attributes"), columns, entity, where, key + "attributes")
    options = {str(k): _text(v) for k, v in (raw.get("options") or {}).items()}
    share_override = share(raw, "max_quarantined_share", 1.0, where, key) if "max_quarantined_share" in raw else None
    return SourceConfig(
        name=name, region=region.code, channel=channel, entity=entity, format=fmt,
        path=take(raw, "path", str, where, key), options=options, columns=columns, mapping=mapping,
        date_format=str(raw.get("date_format") or "yyyy-MM-dd"),
        timestamp_format=str(raw.get("timestamp_format") or "yyyy-MM-dd HH:mm:ss"),
        decimal_separator=str(raw.get("decimal_separator") or "."),
        timezone=timezone(str(raw.get("timezone") or region.timezone), where, key + "timezone"),
        currency=_currency(raw.get("currency") or region.currency, where, key),
        phone_country=str(raw.get("phone_country") or region.phone_country),
        primary_key=primary_key, cdc=cdc, defined_in=where,
        customer_source=name if inline else (str(raw["customer_source"]) if raw.get("customer_source") else None),
        schema_evolution=schema_evolution, mode=mode, sequence=_sequence(raw, mode, where, key),
        max_shrink=share(raw, "max_shrink", DEFAULT_MAX_SHRINK, where, key), inline_customers=inline,
        negative_quantity=negative, attributes=attributes,
        shares_ids_with=tuple(str(s) for s in typed(raw.get("shares_ids_with") or [], list, where,
                                                      key + "shares_ids_with")),
        widths=widths, max_quarantined_share=share_override,
    )


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _currency(value: Any, where: str, key: str) -> str:
    text = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise ConfigError(f"currency '{value}' is not an ISO 4217 code", where=f"{where}: {key}currency",
                          fix="give a three-letter code such as EUR, GBP or USD")
    return text


def _widths(raw: dict, fmt: str, columns: tuple[str, ...], where: str, key: str) -> tuple[int, ...]:
    widths = raw.get("widths")
    if fmt != "fixed_width":
        if widths is not None:
            raise ConfigError("widths is only for format: fixed_width", where=f"{where}: {key}widths",
                              fix="remove it, or set format: fixed_width")
        return ()
    if not isinstance(widths, list) or len(widths) != len(columns) or \
            not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ConfigError(f"widths is {widths!r}", where=f"{where}: {key}widths",
                          fix=f"give one positive character count per column ({len(columns)} columns)")
    return tuple(widths)


def _inline_customers(raw: dict, entity: str, where: str, key: str) -> bool:
    value = raw.get("customers")
    if value is None:
        return False
    if entity != "orders" or value not in ("inline", "master"):
        raise ConfigError(f"customers: {value!r}" + ("" if entity == "orders" else f" on {entity}"),
                          where=f"{where}: {key}customers",
                          fix="on an orders source, use `inline` (each line carries its customer) or `master`")
    if value == "inline" and raw.get("customer_source"):
        raise ConfigError("customers: inline and customer_source both given", where=f"{where}: {key}customers",
                          fix="inline customers are the source's own; remove customer_source")
    return value == "inline"


def _mode(raw: dict, spec, where: str, key: str) -> str | None:
    mode = raw.get("mode")
    if not spec.modes:
        if mode is not None:
            raise ConfigError(f"mode is not for {spec.name} sources", where=f"{where}: {key}mode",
                              fix="modes are for customers (cdc, snapshot, incremental) and products (snapshot, incremental)")
        return None
    if mode is None:
        if spec.name == "customers":
            if raw.get("cdc") is None:
                raise ConfigError("a customers source needs a mode", where=f"{where}: {key}mode",
                                  fix="declare `mode: snapshot` (each file is the full current state), "
                                      "`mode: incremental` (changed records only) or a `cdc:` section for a change feed")
            return CDC
        return spec.modes[0]
    if mode not in spec.modes:
        raise ConfigError(f"unknown mode '{mode}' for a {spec.name} source", where=f"{where}: {key}mode",
                          fix=f"use one of {', '.join(spec.modes)}{did_you_mean(str(mode), list(spec.modes))}")
    if mode != CDC and raw.get("cdc") is not None:
        raise ConfigError(f"mode {mode} with a cdc: section", where=f"{where}: {key}cdc",
                          fix=f"a {mode} source has its changes derived from the files: remove cdc:, or use mode: cdc")
    return str(mode)


def _sequence(raw: dict, mode: str | None, where: str, key: str) -> SequenceSpec:
    spec = raw.get("sequence")
    if spec is None:
        return SequenceSpec()
    key = key + "sequence."
    if mode not in (SNAPSHOT, INCREMENTAL):
        raise ConfigError("sequence is for snapshot and incremental sources", where=f"{where}: {key.rstrip('.')}",
                          fix="remove it, or set mode: snapshot / incremental")
    typed(spec, dict, where, key.rstrip("."))
    reject_unknown(spec, {"from", "pattern", "format"}, where, key)
    origin = str(spec.get("from") or "arrival")
    if origin not in SEQUENCE_FROM:
        raise ConfigError(f"sequence from '{origin}'", where=f"{where}: {key}from",
                          fix=f"use one of {', '.join(SEQUENCE_FROM)}{did_you_mean(origin, list(SEQUENCE_FROM))}")
    if origin == "arrival":
        if "pattern" in spec or "format" in spec:
            raise ConfigError("pattern and format are for sequence from: file_name", where=f"{where}: {key}from",
                              fix="set from: file_name, or remove pattern and format")
        return SequenceSpec()
    pattern = str(take(spec, "pattern", str, where, key))
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ConfigError(f"sequence pattern is not a regular expression ({exc})", where=f"{where}: {key}pattern",
                          fix=r"give a pattern with one group around the export time, e.g. 'customers_(\d{8})\.csv'") from None
    if groups != 1:
        raise ConfigError(f"sequence pattern has {groups} capture groups", where=f"{where}: {key}pattern",
                          fix=r"use exactly one group, around the export time: 'customers_(\d{8})'")
    return SequenceSpec(source="file_name", pattern=pattern, format=str(take(spec, "format", str, where, key)))


def _cdc(raw: Any, columns: tuple[str, ...], is_change_feed: bool, where: str, key: str) -> CdcConfig | None:
    if raw is None:
        if is_change_feed:
            raise ConfigError("a change feed needs a cdc: section", where=f"{where}: {key}cdc",
                              fix="give operation_column, sequence_column and operations: {insert, update, delete}")
        return None
    if not is_change_feed:
        raise ConfigError("a cdc: section on a source that is not a customers change feed", where=f"{where}: {key}cdc",
                          fix="remove it (only customers sources are change feeds)")
    key = key + "cdc."
    reject_unknown(raw, {"operation_column", "sequence_column", "operations"}, where, key)
    op_col = take(raw, "operation_column", str, where, key)
    seq_col = take(raw, "sequence_column", str, where, key)
    for column, name in ((op_col, "operation_column"), (seq_col, "sequence_column")):
        if column not in columns:
            raise ConfigError(f"{name} '{column}' is not in columns", where=f"{where}: {key}{name}",
                              fix=f"name one of the source's columns{did_you_mean(column, list(columns))}")
    operations = {str(k): str(v) for k, v in take(raw, "operations", dict, where, key).items()}
    reject_unknown(operations, set(CDC_OPERATIONS), where, key + "operations.")
    missing = [op for op in CDC_OPERATIONS if op not in operations]
    if missing:
        raise ConfigError(f"operation codes missing for {', '.join(missing)}", where=f"{where}: {key}operations",
                          fix="give the code this source writes for each of insert, update, delete")
    return CdcConfig(operation_column=op_col, sequence_column=seq_col, operations=operations)
