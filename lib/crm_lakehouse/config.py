"""Load ``conf/`` once, at the edge, into typed and validated settings.

Layout: ``conf/base.yaml`` overlaid by ``conf/env/<env>.yaml`` (a deep merge: the overlay's keys
win), plus every ``conf/sources/*.yaml``. Strings may use ``${VAR}`` (the variable must be set) or
``${VAR:-default}``. Every problem raises :class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from crm_lakehouse.entities import CDC_OPERATIONS, ENTITIES
from crm_lakehouse.errors import ConfigError

FORMATS = ("csv", "json", "parquet")
# The repository's own conf/, used when neither --conf nor CRM_LAKEHOUSE_CONF nor ./conf is given.
PACKAGED_CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class RegionConfig:
    """Conventions shared by a region's systems; sources inherit them unless they override."""

    code: str
    timezone: str
    currency: str
    phone_country: str
    countries: tuple[str, ...]
    locale: str


@dataclass(frozen=True)
class CdcConfig:
    """How a change feed marks its operation and orders its events."""

    operation_column: str
    sequence_column: str
    operations: dict[str, str]  # canonical operation -> the code this source writes


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
    mapping: dict[str, str]  # source column -> canonical field
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
    # unless the YAML names another one; None for a channel without a customer master).
    customer_source: str | None = None
    # A file whose columns differ from ``columns`` (extra, missing, renamed; for CSV also a
    # header in the wrong encoding): "quarantine" lands it with the problem noted and silver
    # quarantines its rows; "fail" refuses it, stopping this source until the file is replaced.
    schema_evolution: str = "quarantine"

    def column_for(self, canonical: str) -> str | None:
        """The source's own column name for a canonical field, if it has one."""
        for column, target in self.mapping.items():
            if target == canonical:
                return column
        return None


@dataclass(frozen=True)
class SparkSettings:
    """Session settings; under spark-submit, anything spark-submit set wins over these."""

    master: str
    app_name: str
    conf: dict[str, str]
    ivy_cache: str | None
    log4j_config: str | None = None


@dataclass(frozen=True)
class GeneratorSettings:
    """Defaults for the synthetic data generator."""

    seed: int
    scale: float
    days: int
    start_date: date
    history_days: int
    defect_rates: dict[str, float]


@dataclass(frozen=True)
class IdentitySettings:
    """How records of one person are linked: identifiers that never link, and the cardinality cap."""

    blocked_emails: frozenset[str]
    blocked_phones: frozenset[str]
    max_records_per_identifier: int
    match_keys: tuple[str, ...]


@dataclass(frozen=True)
class SilverSettings:
    """Identity resolution settings and per-rule action overrides (rule name -> warn/quarantine/fail)."""

    identity: IdentitySettings
    rule_actions: dict[str, str]


@dataclass(frozen=True)
class GoldSettings:
    """Gold marts: the RFM score thresholds (a ``gold.customer_360.RfmThresholds``)."""

    rfm: Any


@dataclass(frozen=True)
class ChurnSettings:
    """The churn model: label, snapshots, candidates (a ``churn.model.CandidateParams``), MLflow."""

    registered_model: str
    experiment: str
    tracking_uri: str | None
    dfs_tmpdir: str | None
    horizon_days: int
    active_window_days: int
    train_snapshots: int
    calibration_share: float
    min_class_rows: int
    min_validation_auc: float
    promotion_min_auc_gain: float
    candidates: tuple[str, ...]
    params: Any
    risk_bands: dict[str, float]
    train_if_no_champion: bool


@dataclass(frozen=True)
class SqlSettings:
    """The SQL endpoint: address, role, authentication (password file or HiveServer2 settings)."""

    host: str
    port: int
    role: str
    password_file: str | None
    hive_conf: dict[str, str]
    refresh_seconds: int


@dataclass(frozen=True)
class MaintenanceSettings:
    """The maintain job: how long VACUUM keeps files no longer in a table's current version."""

    vacuum_retention_hours: float
    # erase: VACUUM every table with no retention and drop old log entries at once (True), or
    # leave the old files to the weekly VACUUM and Delta's log retention (False).
    erasure_purge_immediately: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything a job needs, resolved: paths, Spark, regions, sources."""

    env: str
    conf_dir: Path
    root: str
    landing: str
    checkpoints: str
    spark: SparkSettings
    regions: dict[str, RegionConfig]
    channels: tuple[str, ...]
    sources: tuple[SourceConfig, ...]
    generator: GeneratorSettings
    silver: SilverSettings
    gold: GoldSettings
    churn: ChurnSettings
    sql: SqlSettings
    maintenance: MaintenanceSettings

    def table_path(self, layer: str, table: str) -> str:
        return join_path(self.root, layer, table)

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(
            f"unknown source '{name}'",
            where=f"{self.conf_dir}/sources",
            fix=f"use one of: {', '.join(s.name for s in self.sources)}{_did_you_mean(name, [s.name for s in self.sources])}",
        )


def join_path(base: str, *parts: str) -> str:
    """Join path parts for local paths and storage URIs (s3a://, abfss://) alike."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def resolve_conf_dir(conf_dir: str | Path | None = None) -> Path:
    """--conf, else $CRM_LAKEHOUSE_CONF, else ./conf, else the repository's conf/."""
    candidates = [conf_dir, os.environ.get("CRM_LAKEHOUSE_CONF")]
    for candidate in candidates:
        if candidate:
            path = Path(candidate)
            if not (path / "base.yaml").is_file():
                raise ConfigError(
                    f"no base.yaml in config folder '{path}'",
                    where=str(path),
                    fix="point --conf (or CRM_LAKEHOUSE_CONF) at a folder holding base.yaml, env/ and sources/",
                )
            return path
    if (Path.cwd() / "conf" / "base.yaml").is_file():
        return Path.cwd() / "conf"
    return PACKAGED_CONF_DIR


def load_settings(
    conf_dir: str | Path | None = None,
    *,
    env: str = "local",
    lakehouse: str | None = None,
    landing: str | None = None,
) -> Settings:
    """Read base + env overlay + sources, interpolate, validate, and return typed settings.

    Args:
        conf_dir: the config folder (see :func:`resolve_conf_dir`).
        env: overlay name, ``conf/env/<env>.yaml``.
        lakehouse: overrides the lakehouse root (the CLI's ``--lakehouse``).
        landing: overrides the landing folder (default ``<root>/landing``).
    """
    conf = resolve_conf_dir(conf_dir)
    base_file = conf / "base.yaml"
    env_file = conf / "env" / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in (conf / "env").glob("*.yaml"))
        raise ConfigError(
            f"unknown environment '{env}'",
            where=str(env_file),
            fix=f"use --env with one of: {', '.join(known)}{_did_you_mean(env, known)}",
        )
    raw = _deep_merge(_read_yaml(base_file), _read_yaml(env_file))
    where = f"{base_file} (+ {env_file.name})"
    raw = _interpolate(raw, where, "")
    _reject_unknown(raw, {"lakehouse", "spark", "regions", "channels", "generator", "silver", "gold", "churn", "sql", "maintenance"}, where, "")

    lake = _section(raw, "lakehouse", where)
    _reject_unknown(lake, {"root", "landing", "checkpoints"}, where, "lakehouse.")
    root = _absolute(lakehouse or _take(lake, "root", str, where, "lakehouse."))
    landing_dir = _absolute(landing) if landing else _absolute(lake.get("landing") or join_path(root, "landing"))
    checkpoints = _absolute(lake.get("checkpoints") or join_path(root, "_checkpoints"))

    spark = _spark_settings(_section(raw, "spark", where), where, conf)
    regions = _regions(_section(raw, "regions", where), where)
    channels = tuple(_take(raw, "channels", list, where, ""))
    generator = _generator_settings(_section(raw, "generator", where), where)
    sources = _load_sources(conf / "sources", regions, channels)
    silver = _silver_settings(_section(raw, "silver", where), where)
    gold = _gold_settings(_section(raw, "gold", where), where)
    churn = _churn_settings(_section(raw, "churn", where), where)
    sql = _sql_settings(_section(raw, "sql", where), where)
    maintenance = _maintenance_settings(_section(raw, "maintenance", where), where)
    return Settings(
        env=env,
        conf_dir=conf,
        root=root,
        landing=landing_dir,
        checkpoints=checkpoints,
        spark=spark,
        regions=regions,
        channels=channels,
        sources=sources,
        generator=generator,
        silver=silver,
        gold=gold,
        churn=churn,
        sql=sql,
        maintenance=maintenance,
    )


# --- sections -----------------------------------------------------------------------------


def _spark_settings(raw: dict, where: str, conf_dir: Path) -> SparkSettings:
    _reject_unknown(raw, {"master", "app_name", "conf", "ivy_cache"}, where, "spark.")
    ivy = raw.get("ivy_cache")
    if ivy and not Path(ivy).is_absolute():
        # Relative to the project (conf/..), so every working directory shares one jar cache.
        ivy = str((conf_dir.parent / ivy).resolve())
    conf = raw.get("conf") or {}
    if not isinstance(conf, dict):
        raise ConfigError("spark.conf must be a mapping of Spark keys to values", where=f"{where}: spark.conf",
                          fix="write it as `conf: {spark.sql.shuffle.partitions: 4}`")
    return SparkSettings(
        master=str(raw.get("master") or "local[*]"),
        app_name=str(raw.get("app_name") or "crm-lakehouse"),
        conf={str(k): _spark_value(v) for k, v in conf.items()},
        ivy_cache=ivy,
        log4j_config=str((conf_dir / "log4j2.properties").resolve()) if (conf_dir / "log4j2.properties").is_file() else None,
    )


def _spark_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _regions(raw: dict, where: str) -> dict[str, RegionConfig]:
    regions = {}
    for code, spec in raw.items():
        key = f"regions.{code}."
        if not isinstance(spec, dict):
            raise ConfigError(f"region '{code}' must be a mapping", where=f"{where}: regions.{code}",
                              fix="give timezone, currency, phone_country, countries, locale")
        _reject_unknown(spec, {"timezone", "currency", "phone_country", "countries", "locale"}, where, key)
        regions[code] = RegionConfig(
            code=code,
            timezone=_timezone(_take(spec, "timezone", str, where, key), where, key + "timezone"),
            currency=_take(spec, "currency", str, where, key),
            phone_country=_take(spec, "phone_country", str, where, key),
            countries=tuple(_take(spec, "countries", list, where, key)),
            locale=_take(spec, "locale", str, where, key),
        )
    return regions


def _generator_settings(raw: dict, where: str) -> GeneratorSettings:
    key = "generator."
    _reject_unknown(raw, {"seed", "scale", "days", "start_date", "history_days", "defect_rates"}, where, key)
    rates = raw.get("defect_rates") or {}
    for name, rate in rates.items():
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"defect rate '{name}' is {rate!r}", where=f"{where}: generator.defect_rates.{name}",
                              fix="use a fraction between 0 and 1")
    start = raw.get("start_date")
    if not isinstance(start, date):
        raise ConfigError(f"start_date is {start!r}", where=f"{where}: generator.start_date",
                          fix="write an ISO date such as 2026-01-01")
    return GeneratorSettings(
        seed=int(_take(raw, "seed", int, where, key)),
        scale=float(_take(raw, "scale", (int, float), where, key)),
        days=int(_take(raw, "days", int, where, key)),
        start_date=start,
        history_days=int(_take(raw, "history_days", int, where, key)),
        defect_rates={str(k): float(v) for k, v in rates.items()},
    )


def _silver_settings(raw: dict, where: str) -> SilverSettings:
    from crm_lakehouse.silver.identity import MATCH_KEYS
    from crm_lakehouse.silver.quality import ACTIONS

    _reject_unknown(raw, {"identity", "rule_actions"}, where, "silver.")
    identity = _section(raw, "identity", where) if "identity" in raw else {}
    key = "silver.identity."
    _reject_unknown(identity, {"blocked_emails", "blocked_phones", "max_records_per_identifier", "match_keys"}, where, key)
    match_keys = tuple(str(k) for k in identity.get("match_keys") or MATCH_KEYS)
    for match_key in match_keys:
        if match_key not in MATCH_KEYS:
            raise ConfigError(f"unknown match key '{match_key}'", where=f"{where}: {key}match_keys",
                              fix=f"use some of {', '.join(MATCH_KEYS)}{_did_you_mean(match_key, list(MATCH_KEYS))}")
    cap = _take(identity, "max_records_per_identifier", int, where, key)
    if cap < 2:
        raise ConfigError(f"max_records_per_identifier is {cap}", where=f"{where}: {key}max_records_per_identifier",
                          fix="use at least 2 (one person's records in two systems must be able to link)")
    actions = {str(k): str(v) for k, v in (raw.get("rule_actions") or {}).items()}
    for rule, action in actions.items():
        if action not in ACTIONS:
            raise ConfigError(f"rule action '{action}' for '{rule}'", where=f"{where}: silver.rule_actions.{rule}",
                              fix=f"use one of {', '.join(ACTIONS)}")
    return SilverSettings(
        identity=IdentitySettings(
            blocked_emails=frozenset(str(e).strip().lower() for e in identity.get("blocked_emails") or []),
            blocked_phones=frozenset(str(p).strip() for p in identity.get("blocked_phones") or []),
            max_records_per_identifier=cap,
            match_keys=match_keys,
        ),
        rule_actions=actions,
    )


def _gold_settings(raw: dict, where: str) -> GoldSettings:
    from crm_lakehouse.gold.customer_360 import RfmThresholds

    _reject_unknown(raw, {"rfm"}, where, "gold.")
    rfm = _section(raw, "rfm", where) if "rfm" in raw else {}
    key = "gold.rfm."
    names = ("recency_days", "frequency_orders", "monetary_usd")
    _reject_unknown(rfm, {*names, "interaction_window_days"}, where, key)
    bounds = {}
    for name in names:
        values = _take(rfm, name, list, where, key)
        if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
                or sorted(values) != values or len(set(values)) != 4:
            raise ConfigError(f"'{key}{name}' is {values!r}", where=f"{where}: {key}{name}",
                              fix="give four increasing numbers: the bounds between scores 1..5")
        bounds[name] = tuple(values)
    window = _take(rfm, "interaction_window_days", int, where, key)
    return GoldSettings(rfm=RfmThresholds(recency_days=bounds["recency_days"], frequency_orders=bounds["frequency_orders"],
                                          monetary_usd=tuple(float(v) for v in bounds["monetary_usd"]),
                                          interaction_window_days=window))


def _churn_settings(raw: dict, where: str) -> ChurnSettings:
    from crm_lakehouse.churn.model import CANDIDATES, CandidateParams

    key = "churn."
    scalars = {"registered_model": str, "experiment": str, "horizon_days": int, "active_window_days": int,
               "train_snapshots": int, "calibration_share": (int, float), "min_class_rows": int,
               "min_validation_auc": (int, float), "promotion_min_auc_gain": (int, float), "seed": int,
               "train_if_no_champion": bool}
    optional = {"tracking_uri", "dfs_tmpdir"}
    sections = {"candidates", "gbt", "logistic_regression", "risk_bands"}
    _reject_unknown(raw, {*scalars, *optional, *sections}, where, key)
    values = {name: _take(raw, name, kind, where, key) for name, kind in scalars.items()}
    for name in ("horizon_days", "active_window_days", "train_snapshots", "min_class_rows"):
        if values[name] < 1:
            raise ConfigError(f"'{key}{name}' is {values[name]}", where=f"{where}: {key}{name}", fix="use at least 1")
    if not 0 < values["calibration_share"] < 1:
        raise ConfigError(f"'{key}calibration_share' is {values['calibration_share']}",
                          where=f"{where}: {key}calibration_share", fix="use a share between 0 and 1, e.g. 0.2")
    candidates = tuple(str(c) for c in _take(raw, "candidates", list, where, key))
    for candidate in candidates or ("(none)",):
        if candidate not in CANDIDATES:
            raise ConfigError(f"unknown churn candidate '{candidate}'", where=f"{where}: {key}candidates",
                              fix=f"use some of {', '.join(CANDIDATES)}{_did_you_mean(candidate, list(CANDIDATES))}")
    gbt = _section(raw, "gbt", where)
    _reject_unknown(gbt, {"max_iter", "max_depth", "step_size", "subsampling_rate"}, where, f"{key}gbt.")
    lr = _section(raw, "logistic_regression", where)
    _reject_unknown(lr, {"reg_param", "elastic_net"}, where, f"{key}logistic_regression.")
    params = CandidateParams(
        gbt_max_iter=_take(gbt, "max_iter", int, where, f"{key}gbt."),
        gbt_max_depth=_take(gbt, "max_depth", int, where, f"{key}gbt."),
        gbt_step_size=float(_take(gbt, "step_size", (int, float), where, f"{key}gbt.")),
        gbt_subsampling_rate=float(_take(gbt, "subsampling_rate", (int, float), where, f"{key}gbt.")),
        lr_reg_param=float(_take(lr, "reg_param", (int, float), where, f"{key}logistic_regression.")),
        lr_elastic_net=float(_take(lr, "elastic_net", (int, float), where, f"{key}logistic_regression.")),
        seed=values["seed"])
    bands = _section(raw, "risk_bands", where)
    _reject_unknown(bands, {"high", "medium"}, where, f"{key}risk_bands.")
    high = float(_take(bands, "high", (int, float), where, f"{key}risk_bands."))
    medium = float(_take(bands, "medium", (int, float), where, f"{key}risk_bands."))
    if not 0 < medium < high < 1:
        raise ConfigError(f"risk bands medium {medium}, high {high}", where=f"{where}: {key}risk_bands",
                          fix="use 0 < medium < high < 1, e.g. {high: 0.6, medium: 0.3}")
    return ChurnSettings(
        registered_model=values["registered_model"], experiment=values["experiment"],
        tracking_uri=str(raw["tracking_uri"]) if raw.get("tracking_uri") else None,
        dfs_tmpdir=str(raw["dfs_tmpdir"]) if raw.get("dfs_tmpdir") else None,
        horizon_days=values["horizon_days"], active_window_days=values["active_window_days"],
        train_snapshots=values["train_snapshots"], calibration_share=float(values["calibration_share"]),
        min_class_rows=values["min_class_rows"], min_validation_auc=float(values["min_validation_auc"]),
        promotion_min_auc_gain=float(values["promotion_min_auc_gain"]), candidates=candidates, params=params,
        risk_bands={"high": high, "medium": medium}, train_if_no_champion=values["train_if_no_champion"])


def _maintenance_settings(raw: dict, where: str) -> MaintenanceSettings:
    _reject_unknown(raw, {"vacuum_retention_hours", "erasure_purge_immediately"}, where, "maintenance.")
    hours = _take(raw, "vacuum_retention_hours", (int, float), where, "maintenance.")
    if hours < 168:
        # Delta refuses shorter retention unless its safety check is turned off, and with good
        # reason: a reader or a time-travel query older than that would lose its files.
        raise ConfigError(f"'maintenance.vacuum_retention_hours' is {hours}, below Delta's 168-hour safety minimum",
                          where=f"{where}: maintenance.vacuum_retention_hours",
                          fix="give 168 or more (time travel reaches back exactly this far)")
    purge_now = _take(raw, "erasure_purge_immediately", bool, where, "maintenance.")
    return MaintenanceSettings(vacuum_retention_hours=float(hours), erasure_purge_immediately=purge_now)


def _sql_settings(raw: dict, where: str) -> SqlSettings:
    key = "sql."
    _reject_unknown(raw, {"host", "port", "role", "password_file", "hive_conf", "refresh_seconds"}, where, key)
    hive_conf = raw.get("hive_conf") or {}
    if not isinstance(hive_conf, dict):
        raise ConfigError("sql.hive_conf must be a mapping", where=f"{where}: {key}hive_conf",
                          fix="write it as `hive_conf: {hive.server2.authentication: LDAP}`")
    password_file = raw.get("password_file")
    return SqlSettings(
        host=str(_take(raw, "host", str, where, key)), port=_take(raw, "port", int, where, key),
        role=str(_take(raw, "role", str, where, key)),
        password_file=_absolute(str(password_file)) if password_file else None,
        hive_conf={str(k): _spark_value(v) for k, v in hive_conf.items()},
        refresh_seconds=_take(raw, "refresh_seconds", int, where, key))


_SOURCE_KEYS = {
    "name", "channel", "entity", "format", "path", "options", "columns", "mapping", "date_format",
    "timestamp_format", "decimal_separator", "timezone", "currency", "phone_country", "primary_key", "cdc",
    "customer_source", "schema_evolution",
}
SCHEMA_EVOLUTION_POLICIES = ("quarantine", "fail")


def _load_sources(folder: Path, regions: dict[str, RegionConfig], channels: tuple[str, ...]) -> tuple[SourceConfig, ...]:
    if not folder.is_dir():
        raise ConfigError("no sources folder", where=str(folder), fix="create conf/sources/ with one YAML per region")
    sources: list[SourceConfig] = []
    seen: dict[str, str] = {}
    for file in sorted(folder.glob("*.yaml")):
        raw = _interpolate(_read_yaml(file), str(file), "")
        where = str(file)
        _reject_unknown(raw, {"region", "defaults", "sources"}, where, "")
        region_code = _take(raw, "region", str, where, "")
        if region_code not in regions:
            raise ConfigError(f"region '{region_code}' is not declared", where=f"{where}: region",
                              fix=f"use one of {', '.join(regions)}{_did_you_mean(region_code, list(regions))} "
                                  "or add it under regions: in conf/base.yaml")
        region = regions[region_code]
        defaults = raw.get("defaults") or {}
        _reject_unknown(defaults, _SOURCE_KEYS - {"name"}, where, "defaults.")
        entries = _take(raw, "sources", list, where, "")
        for index, entry in enumerate(entries):
            key = f"sources[{index}]."
            if not isinstance(entry, dict):
                raise ConfigError("each source must be a mapping", where=f"{where}: sources[{index}]",
                                  fix="see conf/sources/eu.yaml for the shape")
            _reject_unknown(entry, _SOURCE_KEYS, where, key)
            merged = {**defaults, **entry}
            source = _source(merged, region, channels, where, key)
            if source.name in seen:
                raise ConfigError(f"source name '{source.name}' is used twice", where=f"{where}: {key}name",
                                  fix=f"rename one; the other is in {seen[source.name]}")
            seen[source.name] = where
            sources.append(source)
    if not sources:
        raise ConfigError("no sources declared", where=str(folder), fix="add a YAML file with a sources: list")
    return tuple(_link_customer_sources(sources))


def _link_customer_sources(sources: list[SourceConfig]) -> list[SourceConfig]:
    """Orders name their customer master explicitly, or it is the same region's and channel's."""
    from dataclasses import replace

    masters = {s.name: s for s in sources if s.entity == "customers"}
    by_place = {(s.region, s.channel): s.name for s in masters.values()}
    linked = []
    for source in sources:
        if source.entity == "orders":
            if source.customer_source and source.customer_source not in masters:
                raise ConfigError(f"customer_source '{source.customer_source}' is not a customers source",
                                  where=f"{source.defined_in}: {source.name}.customer_source",
                                  fix=f"use one of {', '.join(sorted(masters))}"
                                      f"{_did_you_mean(source.customer_source, sorted(masters))}")
            source = replace(source, customer_source=source.customer_source or by_place.get((source.region, source.channel)))
        linked.append(source)
    return linked


def _source(raw: dict, region: RegionConfig, channels: tuple[str, ...], where: str, key: str) -> SourceConfig:
    name = _take(raw, "name", str, where, key)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"source name '{name}' is not a valid table name", where=f"{where}: {key}name",
                          fix="use lower-case letters, digits and underscores (it becomes bronze.<name>)")
    channel = _take(raw, "channel", str, where, key)
    if channel not in channels:
        raise ConfigError(f"unknown channel '{channel}'", where=f"{where}: {key}channel",
                          fix=f"use one of {', '.join(channels)}{_did_you_mean(channel, list(channels))} "
                              "or add it to channels: in conf/base.yaml")
    entity = _take(raw, "entity", str, where, key)
    if entity not in ENTITIES:
        raise ConfigError(f"unknown entity '{entity}'", where=f"{where}: {key}entity",
                          fix=f"use one of {', '.join(ENTITIES)}{_did_you_mean(entity, list(ENTITIES))}")
    spec = ENTITIES[entity]
    fmt = _take(raw, "format", str, where, key)
    if fmt not in FORMATS:
        raise ConfigError(f"unsupported format '{fmt}'", where=f"{where}: {key}format",
                          fix=f"use one of {', '.join(FORMATS)}{_did_you_mean(fmt, list(FORMATS))}")
    columns = tuple(str(c) for c in _take(raw, "columns", list, where, key))
    if len(set(columns)) != len(columns):
        raise ConfigError("a column is listed twice", where=f"{where}: {key}columns", fix="list each column once")
    mapping = {str(k): str(v) for k, v in (_take(raw, "mapping", dict, where, key)).items()}
    for column, target in mapping.items():
        if column not in columns:
            raise ConfigError(f"mapping names column '{column}', which is not in columns", where=f"{where}: {key}mapping",
                              fix=f"add it to columns or correct the name{_did_you_mean(column, list(columns))}")
        if target not in spec.fields:
            raise ConfigError(f"mapping sends '{column}' to unknown {entity} field '{target}'",
                              where=f"{where}: {key}mapping.{column}",
                              fix=f"use one of {', '.join(spec.fields)}{_did_you_mean(target, list(spec.fields))}")
    targets = list(mapping.values())
    doubled = {t for t in targets if targets.count(t) > 1}
    if doubled:
        raise ConfigError(f"several columns map to {', '.join(sorted(doubled))}", where=f"{where}: {key}mapping",
                          fix="map each canonical field from one column")
    missing = [f for f in spec.required if f not in targets]
    if missing:
        raise ConfigError(f"required {entity} fields not mapped: {', '.join(missing)}", where=f"{where}: {key}mapping",
                          fix="map a source column to each of them")
    primary_key = tuple(str(c) for c in (raw.get("primary_key") or [c for c in columns if mapping.get(c) in spec.key]))
    for column in primary_key:
        if column not in columns:
            raise ConfigError(f"primary_key column '{column}' is not in columns", where=f"{where}: {key}primary_key",
                              fix=f"use source column names{_did_you_mean(column, list(columns))}")
    cdc = _cdc(raw.get("cdc"), columns, spec.is_change_feed, where, key)
    schema_evolution = str(raw.get("schema_evolution") or "quarantine")
    if schema_evolution not in SCHEMA_EVOLUTION_POLICIES:
        raise ConfigError(f"unknown schema_evolution policy '{schema_evolution}'", where=f"{where}: {key}schema_evolution",
                          fix=f"use one of: {', '.join(SCHEMA_EVOLUTION_POLICIES)}")
    options = {str(k): _spark_value(v) for k, v in (raw.get("options") or {}).items()}
    timezone = _timezone(str(raw.get("timezone") or region.timezone), where, key + "timezone")
    return SourceConfig(
        name=name,
        region=region.code,
        channel=channel,
        entity=entity,
        format=fmt,
        path=_take(raw, "path", str, where, key),
        options=options,
        columns=columns,
        mapping=mapping,
        date_format=str(raw.get("date_format") or "yyyy-MM-dd"),
        timestamp_format=str(raw.get("timestamp_format") or "yyyy-MM-dd HH:mm:ss"),
        decimal_separator=str(raw.get("decimal_separator") or "."),
        timezone=timezone,
        currency=str(raw.get("currency") or region.currency),
        phone_country=str(raw.get("phone_country") or region.phone_country),
        primary_key=primary_key,
        cdc=cdc,
        defined_in=where,
        customer_source=str(raw["customer_source"]) if raw.get("customer_source") else None,
        schema_evolution=schema_evolution,
    )


def _cdc(raw: Any, columns: tuple[str, ...], is_change_feed: bool, where: str, key: str) -> CdcConfig | None:
    if raw is None:
        if is_change_feed:
            raise ConfigError("a change feed needs a cdc: section", where=f"{where}: {key}cdc",
                              fix="give operation_column, sequence_column and operations: {insert, update, delete}")
        return None
    key = key + "cdc."
    _reject_unknown(raw, {"operation_column", "sequence_column", "operations"}, where, key)
    op_col = _take(raw, "operation_column", str, where, key)
    seq_col = _take(raw, "sequence_column", str, where, key)
    for column, name in ((op_col, "operation_column"), (seq_col, "sequence_column")):
        if column not in columns:
            raise ConfigError(f"{name} '{column}' is not in columns", where=f"{where}: {key}{name}",
                              fix=f"name one of the source's columns{_did_you_mean(column, list(columns))}")
    operations = {str(k): str(v) for k, v in _take(raw, "operations", dict, where, key).items()}
    _reject_unknown(operations, set(CDC_OPERATIONS), where, key + "operations.")
    missing = [op for op in CDC_OPERATIONS if op not in operations]
    if missing:
        raise ConfigError(f"operation codes missing for {', '.join(missing)}", where=f"{where}: {key}operations",
                          fix="give the code this source writes for each of insert, update, delete")
    return CdcConfig(operation_column=op_col, sequence_column=seq_col, operations=operations)


# --- helpers ------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
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


def _deep_merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _interpolate(value: Any, where: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, where, f"{key}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, where, f"{key}[{i}].") for i, v in enumerate(value)]
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


def _section(raw: dict, name: str, where: str) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"section '{name}' is missing or not a mapping", where=f"{where}: {name}",
                          fix=f"add `{name}:` with its keys (see the repository's conf/base.yaml)")
    return value


def _take(raw: dict, name: str, kind: Any, where: str, key: str) -> Any:
    if name not in raw or raw[name] is None:
        raise ConfigError(f"required key '{key}{name}' is missing", where=f"{where}: {key}{name}", fix=f"add `{name}:`")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, (int, float)):
        wanted = getattr(kind, "__name__", "number")
        raise ConfigError(f"'{key}{name}' is {value!r}, expected {wanted}", where=f"{where}: {key}{name}",
                          fix=f"give a {wanted}")
    return value


def _reject_unknown(raw: dict, allowed: set[str], where: str, key: str) -> None:
    for name in raw:
        if name not in allowed:
            raise ConfigError(f"unknown key '{key}{name}'", where=f"{where}: {key}{name}",
                              fix=f"remove it or use one of: {', '.join(sorted(allowed))}{_did_you_mean(str(name), sorted(allowed))}")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _timezone(name: str, where: str, key: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone '{name}'", where=f"{where}: {key}",
                          fix="use an IANA name such as Europe/Berlin or Asia/Shanghai") from None
    return name


def _absolute(path: str) -> str:
    if "://" in path:
        return path.rstrip("/")
    return str(Path(path).expanduser().resolve())
