"""Load ``conf/`` once, at the edge, into typed and validated settings.

Layout: ``conf/base.yaml`` overlaid by ``conf/env/<env>.yaml`` (a deep merge: the overlay's keys
win), plus every ``conf/sources/*.yaml`` (:mod:`crm_lakehouse.config.sources`). Strings may use
``${VAR}`` (the variable must be set) or ``${VAR:-default}``. Every problem raises
:class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from crm_lakehouse.config.checks import (
    absolute as _absolute, deep_merge as _deep_merge, did_you_mean as _did_you_mean, interpolate as _interpolate,
    read_yaml as _read_yaml, reject_unknown as _reject_unknown, section as _section, share as _share, take as _take,
    timezone as _timezone,
)
from crm_lakehouse.config.sources import (
    FORMATS, TEXT_FORMATS, CdcConfig, FieldSpec, SequenceSpec, SourceConfig, load_sources,
)
from crm_lakehouse.errors import ConfigError

__all__ = ["FORMATS", "TEXT_FORMATS", "CdcConfig", "ConfigError", "FieldSpec", "SequenceSpec", "Settings",
           "SourceConfig", "join_path", "load_settings", "resolve_conf_dir"]

# The installation's root (the repository, or where the package was unpacked) and its conf/,
# used when neither --conf nor CRM_LAKEHOUSE_CONF nor ./conf is given.
PROJECT_DIR = Path(__file__).resolve().parents[3]
PACKAGED_CONF_DIR = PROJECT_DIR / "conf"


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
    # A batch in which more of a source's rows than this share are quarantined makes the job
    # report a failure (after writing the batch, so the quarantine can be inspected).
    max_quarantined_share: float = 0.5


@dataclass(frozen=True)
class GoldSettings:
    """Gold marts: the RFM score thresholds (a ``gold.customer_360.RfmThresholds``), and whether
    the tables use deletion vectors (cheaper MERGEs; readers without support, such as
    delta-rs/deltalake and Polars, need them off)."""

    rfm: Any
    deletion_vectors: bool = True


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
    # The currency of every *_reporting amount; order lines in another currency need an FX rate.
    reporting_currency: str = "USD"

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
    _reject_unknown(raw, {"lakehouse", "spark", "regions", "channels", "generator", "silver", "gold", "churn", "sql",
                          "maintenance", "reporting_currency"}, where, "")

    lake = _section(raw, "lakehouse", where)
    _reject_unknown(lake, {"root", "landing", "checkpoints"}, where, "lakehouse.")
    root = _absolute(lakehouse or _take(lake, "root", str, where, "lakehouse."))
    landing_dir = _absolute(landing) if landing else _absolute(lake.get("landing") or join_path(root, "landing"))
    checkpoints = _absolute(lake.get("checkpoints") or join_path(root, "_checkpoints"))

    spark = _spark_settings(_section(raw, "spark", where), where, conf)
    regions = _regions(_section(raw, "regions", where), where)
    channels = tuple(_take(raw, "channels", list, where, ""))
    generator = _generator_settings(_section(raw, "generator", where), where)
    sources = load_sources(conf / "sources", regions, channels)
    silver = _silver_settings(_section(raw, "silver", where), where)
    reporting_currency = str(raw.get("reporting_currency") or "USD").strip().upper()
    if len(reporting_currency) != 3 or not reporting_currency.isalpha():
        raise ConfigError(f"reporting_currency '{raw.get('reporting_currency')}' is not an ISO 4217 code",
                          where=f"{where}: reporting_currency", fix="give a three-letter code such as USD, EUR or GBP")
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
        reporting_currency=reporting_currency,
    )


# --- sections -----------------------------------------------------------------------------


def _spark_settings(raw: dict, where: str, conf_dir: Path) -> SparkSettings:
    _reject_unknown(raw, {"master", "app_name", "conf", "ivy_cache"}, where, "spark.")
    ivy = raw.get("ivy_cache")
    if ivy and not Path(ivy).is_absolute():
        # Relative to the installation, not to the config folder: a config kept elsewhere (or
        # any working directory) shares the one jar cache that `make` filled.
        ivy = str((PROJECT_DIR / ivy).resolve())
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
    from crm_lakehouse.silver.rules import rule_catalog

    _reject_unknown(raw, {"identity", "rule_actions", "max_quarantined_share"}, where, "silver.")
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
    catalog = rule_catalog()
    for rule, action in actions.items():
        at = f"{where}: silver.rule_actions.{rule}"
        if action not in ACTIONS:
            raise ConfigError(f"rule action '{action}' for '{rule}'", where=at, fix=f"use one of {', '.join(ACTIONS)}")
        if rule not in catalog:
            raise ConfigError(f"unknown quality rule '{rule}'{_did_you_mean(rule, sorted(catalog))}", where=at,
                              fix="name a rule of the silver tables (see docs/configuration.md, 'Quality rules')")
        guarded = [e for e in catalog[rule] if e.guards]
        if action == "warn" and guarded:
            rule_ = guarded[0]
            raise ConfigError(f"rule '{rule}' cannot be warn: {rule_.guards} rejects every row it catches, so the "
                              "batch could not be written", where=at,
                              fix=rule_.fix_hint or "use quarantine or fail")
    return SilverSettings(
        identity=IdentitySettings(
            blocked_emails=frozenset(str(e).strip().lower() for e in identity.get("blocked_emails") or []),
            blocked_phones=frozenset(str(p).strip() for p in identity.get("blocked_phones") or []),
            max_records_per_identifier=cap,
            match_keys=match_keys,
        ),
        rule_actions=actions,
        max_quarantined_share=_share(raw, "max_quarantined_share", 0.5, where, "silver."),
    )


def _gold_settings(raw: dict, where: str) -> GoldSettings:
    from crm_lakehouse.gold.customer_360 import RfmThresholds

    _reject_unknown(raw, {"rfm", "deletion_vectors"}, where, "gold.")
    deletion_vectors = _take(raw, "deletion_vectors", bool, where, "gold.") if "deletion_vectors" in raw else True
    rfm = _section(raw, "rfm", where) if "rfm" in raw else {}
    key = "gold.rfm."
    names = ("recency_days", "frequency_orders", "monetary")
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
                                          monetary=tuple(float(v) for v in bounds["monetary"]),
                                          interaction_window_days=window), deletion_vectors=deletion_vectors)


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


