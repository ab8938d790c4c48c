"""``crm-lakehouse source suggest FILE``: a draft source entry from one export file, without Spark.

It reads the first rows and guesses what a data engineer would otherwise work out by hand: the
format, the encoding, the delimiter, quoting and header; which columns hold dates and timestamps
and in which Spark pattern (day-first or month-first told apart by values above 12); decimal
commas; and a mapping from the column names (English, German, French, Spanish, Chinese,
Japanese). Every guess is marked ``# review``: the draft is a start, not a verdict.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crm_lakehouse.authoring.synonyms import entity_of, fold, guess_field, name_parts
from crm_lakehouse.entities import DATE, DECIMAL, ENTITIES, TIMESTAMP
from crm_lakehouse.errors import ConfigError

SAMPLE_BYTES = 1 << 20
SAMPLE_ROWS = 500
# (strptime format, Spark pattern); single-letter Spark fields also read zero-padded values.
DATE_PATTERNS = [
    ("%Y-%m-%d", "yyyy-MM-dd"), ("%Y/%m/%d", "yyyy/M/d"), ("%Y%m%d", "yyyyMMdd"), ("%d.%m.%Y", "d.M.yyyy"),
    ("%d/%m/%Y", "d/M/yyyy"), ("%m/%d/%Y", "M/d/yyyy"), ("%d-%m-%Y", "d-M-yyyy"), ("%m-%d-%Y", "M-d-yyyy"),
    ("%Y年%m月%d日", "yyyy'年'M'月'd'日'"),
]
TIME_PATTERNS = [("%H:%M:%S", "H:mm:ss"), ("%H:%M", "H:mm"), ("%I:%M:%S %p", "h:mm:ss a"), ("%I:%M %p", "h:mm a")]
DAY_FIRST = {"%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"}
MONTH_FIRST = {"%m/%d/%Y": "%d/%m/%Y", "%m-%d-%Y": "%d-%m-%Y"}


@dataclass
class Sample:
    """What the file looks like: its format and reader options, columns and some values."""

    format: str
    options: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_sample(path: Path) -> Sample:
    if not path.is_file():
        raise ConfigError("no such file", where=str(path), fix="give the path of one export file")
    if path.suffix.lower() == ".parquet":
        return _parquet_sample(path)
    raw = path.read_bytes()[:SAMPLE_BYTES]
    encoding, text = _decode(raw)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _json_sample(text, encoding)
    return _text_sample(text, encoding)


def _decode(raw: bytes) -> tuple[str, str]:
    """The encoding that decodes the bytes: UTF-8 (with or without BOM), UTF-16 by BOM, GB18030
    for Chinese text, else ISO-8859-1 (which decodes anything: say so in the draft)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "UTF-8", raw[3:].decode("utf-8", errors="replace")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16", raw.decode("utf-16", errors="replace")
    cut = raw[: len(raw) - 4] if len(raw) == SAMPLE_BYTES else raw   # a sample may end mid-character
    try:
        return "UTF-8", cut.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = cut.decode("gb18030")
        if sum("\u4e00" <= ch <= "\u9fff" for ch in text) > 0.01 * len(text):
            return "GB18030", text
    except UnicodeDecodeError:
        pass
    return "ISO-8859-1", cut.decode("iso-8859-1")


def _parquet_sample(path: Path) -> Sample:
    import pyarrow.parquet as pq

    table = pq.read_table(path).slice(0, SAMPLE_ROWS)
    columns = table.column_names
    values = {c: [str(v) for v in table.column(c).to_pylist() if v is not None] for c in columns}
    return Sample("parquet", {}, columns, values)


def _json_sample(text: str, encoding: str) -> Sample:
    records = []
    for line in text.splitlines()[:SAMPLE_ROWS]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    columns: list[str] = []
    for record in records:
        columns += [k for k in record if k not in columns]
    values = {c: [str(r[c]) for r in records if r.get(c) not in (None, "")] for c in columns}
    return Sample("json", {"encoding": encoding} if encoding != "UTF-8" else {}, columns, values)


def _text_sample(text: str, encoding: str) -> Sample:
    lines = [line for line in text.splitlines() if line.strip()][: SAMPLE_ROWS + 1]
    if len(text) >= SAMPLE_BYTES - 4:
        lines = lines[:-1]                                   # the last line may be cut off
    delimited = _delimited(lines)
    if delimited is not None:
        delimiter, quote = delimited
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, quotechar=quote))
        width = max(len(r) for r in rows)
        header = _has_header(rows)
        columns = [c.strip() or f"column_{i + 1}" for i, c in enumerate(rows[0])] if header else \
            [f"column_{i + 1}" for i in range(width)]
        body = rows[1:] if header else rows
        values = {c: [r[i].strip() for r in body if i < len(r) and r[i].strip()] for i, c in enumerate(columns)}
        options = {"header": "true" if header else "false", "sep": delimiter, "encoding": encoding}
        if quote != '"':
            options["quote"] = quote
        notes = [] if header else ["no header row: name the columns"]
        return Sample("csv", options, columns, values, notes)
    split = [line.split() for line in lines]
    width = max(len(fields) for fields in split)
    header = all(not _is_number(v) for v in split[0]) and any(_is_number(v) for row in split[1:] for v in row)
    columns = split[0] if header and len(split[0]) == width else [f"column_{i + 1}" for i in range(width)]
    body = split[1:] if header else split
    values = {c: [r[i] for r in body if i < len(r)] for i, c in enumerate(columns)}
    options = {"encoding": encoding} if encoding != "UTF-8" else {}
    if header:
        options["header"] = "true"
    notes = ["whitespace-separated fields; if a value can contain spaces, use format: fixed_width with widths"]
    if not header:
        notes.append("no header row: name the columns")
    return Sample("whitespace", options, columns, values, notes)


def _delimited(lines: list[str]) -> tuple[str, str] | None:
    """(delimiter, quote) when the lines are delimited text with a steady field count."""
    best = None
    for delimiter in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(io.StringIO("\n".join(lines[:50])), delimiter=delimiter)]
        if counts and min(counts) > 1 and max(counts) == min(counts):
            if best is None or counts[0] > best[1]:
                best = (delimiter, counts[0])
    if best is None:
        return None
    quote = "'" if sum(line.count("'") for line in lines[:50]) > 2 * sum(line.count('"') for line in lines[:50]) + 2 \
        else '"'
    return best[0], quote


def _has_header(rows: list[list[str]]) -> bool:
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:]
    numeric_below = [any(_is_number(r[i]) for r in rest if i < len(r)) for i in range(len(first))]
    return not any(_is_number(v) for v in first) and (any(numeric_below) or len(set(first)) == len(first))


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\d+([.,]\d+)?", text.strip()))


def _all_parse(values: list[str], fmt: str) -> bool:
    """Whether (nearly) every value parses: a defect or two must not hide a date column."""
    failures = 0
    for value in values:
        try:
            datetime.strptime(value, fmt)
        except ValueError:
            failures += 1
            if failures > len(values) // 20:
                return False
    return failures < len(values)


def temporal_pattern(values: list[str]) -> tuple[str, str] | None:
    """(kind, Spark pattern) when every sampled value is a date or a timestamp of one pattern."""
    values = [v.strip() for v in values if v.strip()][:SAMPLE_ROWS]
    if not values:
        return None
    candidates = []
    for date_fmt, date_spark in DATE_PATTERNS:
        candidates.append((DATE, date_fmt, date_spark))
        for sep_py, sep_spark in ((" ", " "), ("T", "'T'")):
            for time_fmt, time_spark in TIME_PATTERNS:
                candidates.append((TIMESTAMP, date_fmt + sep_py + time_fmt, date_spark + sep_spark + time_spark))
    matches = [(kind, fmt, spark) for kind, fmt, spark in candidates if _all_parse(values, fmt)]
    if not matches:
        return None
    # Month-first when no value has a first part above 12 is ambiguous: day-first wins only if some
    # value proves it (13/01/2024), month-first only if some value proves that (01/13/2024).
    kind, fmt, spark = matches[0]
    day_first = [m for m in matches if any(d in m[1] for d in DAY_FIRST)]
    month_first = [m for m in matches if any(mf in m[1] for mf in MONTH_FIRST)]
    if day_first and month_first:
        kind, fmt, spark = day_first[0]
    return kind, spark


def _decimal_separator(values: list[str]) -> str | None:
    commas = sum(bool(re.fullmatch(r"-?\d{1,3}(\.\d{3})*,\d+", v.strip())) for v in values)
    dots = sum(bool(re.fullmatch(r"-?\d+\.\d+", v.strip())) for v in values)
    return "," if commas > dots else None


@dataclass
class Draft:
    entity: str
    sample: Sample
    mapping: list[tuple[str, str, bool]]          # (column, canonical field, exact)
    patterns: dict[str, str]                     # date_format / timestamp_format
    decimal_separator: str | None
    unmapped: list[str]
    name_parts: tuple[str, str] | None = None    # (first, last) name columns joined into full_name


def draft_source(path: Path, entity: str | None = None) -> Draft:
    sample = read_sample(path)
    entity = entity or entity_of(sample.columns)
    if entity not in ENTITIES:
        raise ConfigError(f"unknown entity '{entity}'", where="--entity", fix=f"use one of {', '.join(ENTITIES)}")
    fields = ENTITIES[entity].fields
    taken: set[str] = set()
    mapping, unmapped = [], []
    patterns: dict[str, str] = {}
    parts = name_parts(sample.columns) if entity == "customers" else None
    if parts:
        taken.add("full_name")
    for column in sample.columns:
        if parts and column in parts:
            continue
        guess = guess_field(column, entity, taken)
        temporal = temporal_pattern(sample.values.get(column, []))
        if guess is None and temporal and entity == "orders" and "ordered_at" not in taken:
            guess = ("ordered_at", False)
        if guess is None:
            unmapped.append(column)
            continue
        name, exact = guess
        taken.add(name)
        mapping.append((column, name, exact))
        kind = fields[name]
        if kind in (DATE, TIMESTAMP) and temporal:
            # A date-only pattern reads timestamps too (midnight), so either kind of field takes it.
            patterns.setdefault("date_format" if kind == DATE else "timestamp_format", temporal[1])
    decimals = [v for c, n, _ in mapping if fields[n] == DECIMAL for v in sample.values.get(c, [])]
    return Draft(entity, sample, mapping, patterns, _decimal_separator(decimals), unmapped, parts)


def render(draft: Draft, *, name: str, source_file: Path) -> str:
    """The draft as a region file holding one source, every guess marked ``# review``."""
    sample, entity = draft.sample, draft.entity
    mapped = {field for _, field, _ in draft.mapping}
    lines = [f"# Draft from {source_file.name} by crm-lakehouse source suggest: check every line marked # review,",
             "# then save it as conf/sources/<region>.yaml (or add the entry to an existing region file).",
             "region: us                          # review: a region declared under regions: in conf/base.yaml",
             "sources:", f"  - name: {name}", "    channel: web                      # review: web, store, call_center, app, partner",
             f"    entity: {entity}" + ("" if entity else "  # review")]
    if entity == "customers":
        lines.append("    mode: snapshot                    # review: snapshot (full state per file), incremental, or a cdc: section")
    lines += [f"    format: {sample.format}",
              f"    path: us/web/{entity}                # review: the folder under the landing folder its files arrive in"]
    if sample.options:
        lines.append("    options: {" + ", ".join(f"{k}: {v if v in ('true', 'false') else _yaml_scalar(v)}"
                                                 for k, v in sample.options.items()) + "}")
    for key, pattern in sorted(draft.patterns.items()):
        lines.append(f"    {key}: {_yaml_scalar(pattern)}          # review: inferred from the values")
    if draft.decimal_separator:
        lines.append(f"    decimal_separator: {_yaml_scalar(draft.decimal_separator)}")
    lines.append("    columns: [" + ", ".join(_yaml_scalar(c) for c in sample.columns) + "]")
    lines.append("    mapping:")
    if draft.name_parts:
        first, last = draft.name_parts
        lines.append(f"      full_name: {{expr: \"concat_ws(' ', `{first}`, `{last}`)\"}}")
    for column, canonical, exact in draft.mapping:
        lines.append(f"      {_yaml_scalar(column)}: {canonical}" + ("" if exact else "          # review: guessed"))
    if entity == "orders":
        if "line_number" not in mapped:
            lines.append("      line_number: {generated: line_in_order}   # review: no line number column")
        if "order_id" not in mapped:
            lines.append("      order_id: {expr: \"concat(<customer column>, '-', <date column>)\"}   # review: no order id")
        if "product_id" not in mapped:
            lines.append("      product_id: {value: ITEM}           # review: no product column")
        if "status" not in mapped:
            lines.append("      # no status column: every line counts as a completed sale")
        if "currency" not in mapped:
            lines.append("      # no currency column: the source's currency: (default: its region's) applies")
    if entity == "customers" and draft.unmapped:
        lines.append("    attributes:                       # review: keep those worth carrying to customer_360")
        for column in draft.unmapped:
            kind = _attribute_kind(sample.values.get(column, []))
            spec = f"{{column: {_yaml_scalar(column)}" + (f", type: {kind}}}" if kind != "string" else "}")
            lines.append(f"      {_attribute_name(column)}: {spec}")
    else:
        for column in draft.unmapped:
            lines.append(f"      # {column}: not recognised — map it, or leave it in bronze")
    for note in sample.notes:
        lines.append(f"    # review: {note}")
    return "\n".join(lines) + "\n"


def _attribute_name(column: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", fold(column).encode("ascii", "ignore").decode()).strip("_")
    return name if re.fullmatch(r"[a-z][a-z0-9_]*", name or "") else f"attribute_{zlib.crc32(column.encode()) % 1000}"


def _attribute_kind(values: list[str]) -> str:
    words = {v.strip().lower() for v in values if v.strip()}
    if words and words <= {"yes", "no", "true", "false", "y", "n", "0", "1"} and len(words) <= 2:
        return "boolean"
    if words and all(re.fullmatch(r"-?\d+", w) for w in words):
        return "integer"
    if words and all(re.fullmatch(r"-?\d+([.,]\d+)?", w) for w in words):
        return "decimal"
    if temporal_pattern(list(words)):
        return "date"
    return "string"


def _yaml_scalar(value: str) -> str:
    if value == "" or re.search(r"[:;#{}\[\],&*?|>'\"%@`!]|^\s|\s$|^-", value) or value.lower() in (
            "yes", "no", "true", "false", "on", "off", "null", "~") or _is_number(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'
    return value


def suggest(path: str, *, entity: str | None = None, name: str | None = None) -> str:
    file = Path(path)
    draft = draft_source(file, entity)
    stem = re.sub(r"[^a-z0-9]+", "_", file.stem.lower()).strip("_") or "source"
    return render(draft, name=name or f"new_{stem}"[:60].rstrip("_"), source_file=file)
