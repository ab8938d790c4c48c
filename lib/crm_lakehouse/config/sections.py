"""The YAML sections of base.yaml (+ the env overlay) checked and turned into settings.

Each function takes a section's raw mapping and ``where`` (the files it came from) and raises a
one-line :class:`ConfigError` naming file, key and fix; ``load_settings`` calls them in turn.
Checks that only a layer can make (a rule override against the rules the silver tables declare)
are the layers' own: see :mod:`crm_lakehouse.startup`.
"""

from __future__ import annotations

import re

from datetime import date
from pathlib import Path
from typing import Any

from crm_lakehouse.config.checks import absolute, did_you_mean, reject_unknown, section, share, take, timezone, typed
from crm_lakehouse.config.settings import (
    PROJECT_DIR, CHURN_CANDIDATES, MATCH_KEYS, RULE_ACTIONS, CandidateParams, ChurnSettings, GeneratorSettings, GoldSettings,
    IdentitySettings, MaintenanceSettings, MatchingSettings, RegionConfig, RfmThresholds, SilverSettings, SparkSettings, SqlSettings,
)
from crm_lakehouse.errors import ConfigError


def spark_settings(raw: dict, where: str, conf_dir: Path) -> SparkSettings:
    reject_unknown(raw, {"master", "app_name", "conf", "ivy_cache", "interpreted_below_rows",
                         "sources_at_once"}, where, "spark.")
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
        conf={str(k): spark_value(v) for k, v in conf.items()},
        ivy_cache=ivy,
        log4j_config=str((conf_dir / "log4j2.properties").resolve()) if (conf_dir / "log4j2.properties").is_file() else None,
        interpreted_below_rows=_non_negative(typed(raw.get("interpreted_below_rows", 0), int, where,
                                                   "spark.interpreted_below_rows"), where, "spark.interpreted_below_rows"),
        sources_at_once=_at_least_one(typed(raw.get("sources_at_once", 2), int, where, "spark.sources_at_once"), where,
                                      "spark.sources_at_once"),
    )


def _at_least_one(value: int, where: str, key: str) -> int:
    if value < 1:
        raise ConfigError(f"'{key}' is {value}", where=f"{where}: {key}",
                          fix="give how many sources to ingest at once, 1 or more (1 ingests them one by one)")
    return value


def _non_negative(value: int, where: str, key: str) -> int:
    if value < 0:
        raise ConfigError(f"'{key}' is {value}", where=f"{where}: {key}", fix="give a row count, or 0 to turn it off")
    return value


def spark_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def regions(raw: dict, where: str) -> dict[str, RegionConfig]:
    regions = {}
    for code, spec in raw.items():
        key = f"regions.{code}."
        if not isinstance(spec, dict):
            raise ConfigError(f"region '{code}' must be a mapping", where=f"{where}: regions.{code}",
                              fix="give timezone, currency, phone_country, countries, locale")
        reject_unknown(spec, {"timezone", "currency", "phone_country", "countries", "locale"}, where, key)
        regions[code] = RegionConfig(
            code=code,
            timezone=timezone(take(spec, "timezone", str, where, key), where, key + "timezone"),
            currency=take(spec, "currency", str, where, key),
            phone_country=take(spec, "phone_country", str, where, key),
            countries=tuple(take(spec, "countries", list, where, key)),
            locale=take(spec, "locale", str, where, key),
        )
    return regions


def generator_settings(raw: dict, where: str) -> GeneratorSettings:
    key = "generator."
    reject_unknown(raw, {"seed", "scale", "days", "start_date", "history_days", "defect_rates"}, where, key)
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
        seed=int(take(raw, "seed", int, where, key)),
        scale=float(take(raw, "scale", (int, float), where, key)),
        days=int(take(raw, "days", int, where, key)),
        start_date=start,
        history_days=int(take(raw, "history_days", int, where, key)),
        defect_rates={str(k): float(v) for k, v in rates.items()},
    )


def silver_settings(raw: dict, where: str) -> SilverSettings:
    reject_unknown(raw, {"identity", "rule_actions", "max_quarantined_share"}, where, "silver.")
    identity = section(raw, "identity", where) if "identity" in raw else {}
    key = "silver.identity."
    reject_unknown(identity, {"blocked_emails", "blocked_phones", "max_records_per_identifier", "match_keys",
                              "probabilistic"}, where, key)
    match_keys = tuple(str(k) for k in identity.get("match_keys") or MATCH_KEYS)
    for match_key in match_keys:
        if match_key not in MATCH_KEYS:
            raise ConfigError(f"unknown match key '{match_key}'", where=f"{where}: {key}match_keys",
                              fix=f"use some of {', '.join(MATCH_KEYS)}{did_you_mean(match_key, list(MATCH_KEYS))}")
    cap = take(identity, "max_records_per_identifier", int, where, key)
    if cap < 2:
        raise ConfigError(f"max_records_per_identifier is {cap}", where=f"{where}: {key}max_records_per_identifier",
                          fix="use at least 2 (one person's records in two systems must be able to link)")
    actions = {str(k): str(v) for k, v in (raw.get("rule_actions") or {}).items()}
    for rule, action in actions.items():
        if action not in RULE_ACTIONS:
            raise ConfigError(f"rule action '{action}' for '{rule}'", where=f"{where}: silver.rule_actions.{rule}",
                              fix=f"use one of {', '.join(RULE_ACTIONS)}")
    return SilverSettings(
        identity=IdentitySettings(
            blocked_emails=frozenset(str(e).strip().lower() for e in identity.get("blocked_emails") or []),
            blocked_phones=frozenset(str(p).strip() for p in identity.get("blocked_phones") or []),
            max_records_per_identifier=cap,
            match_keys=match_keys,
            probabilistic=matching_settings(identity.get("probabilistic") or {}, where),
        ),
        rule_actions=actions,
        max_quarantined_share=share(raw, "max_quarantined_share", 0.5, where, "silver."),
    )


def matching_settings(raw: dict, where: str) -> MatchingSettings:
    key = "silver.identity.probabilistic."
    if not isinstance(raw, dict):
        raise ConfigError(f"'{key[:-1]}' is {raw!r}", where=f"{where}: {key[:-1]}",
                          fix="give a mapping with enabled, link_at, review_from, model, min_training_records, "
                              "scoring_memory")
    reject_unknown(raw, {"enabled", "link_at", "review_from", "model", "min_training_records", "scoring_memory"},
                   where, key)
    defaults = MatchingSettings()
    enabled = typed(raw.get("enabled", defaults.enabled), bool, where, f"{key}enabled")
    link_at = float(typed(raw.get("link_at", defaults.link_at), (int, float), where, f"{key}link_at"))
    review_from = float(typed(raw.get("review_from", defaults.review_from), (int, float), where, f"{key}review_from"))
    if review_from > link_at:
        raise ConfigError(f"review_from {review_from} is above link_at {link_at}", where=f"{where}: {key}review_from",
                          fix="give a review_from at most link_at (equal turns the review queue off)")
    minimum = typed(raw.get("min_training_records", defaults.min_training_records), int, where,
                    f"{key}min_training_records")
    if minimum < 2:
        raise ConfigError(f"min_training_records is {minimum}", where=f"{where}: {key}min_training_records",
                          fix="use at least 2 (a model learns from pairs of records)")
    model = raw.get("model") or None  # empty: an unset ${VAR:-}
    if model is not None:
        model = absolute(str(typed(model, str, where, f"{key}model")))
    memory = str(raw.get("scoring_memory", defaults.scoring_memory)).replace(" ", "")
    if not re.fullmatch(r"[1-9][0-9]*(\.[0-9]+)?([KMGT]i?B)", memory, re.IGNORECASE):
        raise ConfigError(f"scoring_memory is {raw.get('scoring_memory')!r}", where=f"{where}: {key}scoring_memory",
                          fix="give a size such as 512MB or 2GB")
    return MatchingSettings(enabled=enabled, link_at=link_at, review_from=review_from, model=model,
                            min_training_records=minimum, scoring_memory=memory)


def gold_settings(raw: dict, where: str) -> GoldSettings:
    reject_unknown(raw, {"rfm", "deletion_vectors"}, where, "gold.")
    deletion_vectors = take(raw, "deletion_vectors", bool, where, "gold.") if "deletion_vectors" in raw else True
    rfm = section(raw, "rfm", where) if "rfm" in raw else {}
    key = "gold.rfm."
    names = ("recency_days", "frequency_orders", "monetary")
    reject_unknown(rfm, {*names, "interaction_window_days"}, where, key)
    bounds = {}
    for name in names:
        values = take(rfm, name, list, where, key)
        if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
                or sorted(values) != values or len(set(values)) != 4:
            raise ConfigError(f"'{key}{name}' is {values!r}", where=f"{where}: {key}{name}",
                              fix="give four increasing numbers: the bounds between scores 1..5")
        bounds[name] = tuple(values)
    window = take(rfm, "interaction_window_days", int, where, key)
    return GoldSettings(rfm=RfmThresholds(recency_days=bounds["recency_days"], frequency_orders=bounds["frequency_orders"],
                                          monetary=tuple(float(v) for v in bounds["monetary"]),
                                          interaction_window_days=window), deletion_vectors=deletion_vectors)


def churn_settings(raw: dict, where: str) -> ChurnSettings:
    key = "churn."
    scalars = {"registered_model": str, "experiment": str, "horizon_days": int, "active_window_days": int,
               "train_snapshots": int, "calibration_share": (int, float), "min_class_rows": int,
               "min_validation_auc": (int, float), "promotion_min_auc_gain": (int, float), "seed": int,
               "train_if_no_champion": bool}
    optional = {"tracking_uri", "dfs_tmpdir"}
    sections = {"candidates", "gbt", "logistic_regression", "risk_bands"}
    reject_unknown(raw, {*scalars, *optional, *sections}, where, key)
    values = {name: take(raw, name, kind, where, key) for name, kind in scalars.items()}
    for name in ("horizon_days", "active_window_days", "train_snapshots", "min_class_rows"):
        if values[name] < 1:
            raise ConfigError(f"'{key}{name}' is {values[name]}", where=f"{where}: {key}{name}", fix="use at least 1")
    if not 0 < values["calibration_share"] < 1:
        raise ConfigError(f"'{key}calibration_share' is {values['calibration_share']}",
                          where=f"{where}: {key}calibration_share", fix="use a share between 0 and 1, e.g. 0.2")
    candidates = tuple(str(c) for c in take(raw, "candidates", list, where, key))
    for candidate in candidates or ("(none)",):
        if candidate not in CHURN_CANDIDATES:
            raise ConfigError(f"unknown churn candidate '{candidate}'", where=f"{where}: {key}candidates",
                              fix=f"use some of {', '.join(CHURN_CANDIDATES)}{did_you_mean(candidate, list(CHURN_CANDIDATES))}")
    gbt = section(raw, "gbt", where)
    reject_unknown(gbt, {"max_iter", "max_depth", "step_size", "subsampling_rate"}, where, f"{key}gbt.")
    lr = section(raw, "logistic_regression", where)
    reject_unknown(lr, {"reg_param", "elastic_net"}, where, f"{key}logistic_regression.")
    params = CandidateParams(
        gbt_max_iter=take(gbt, "max_iter", int, where, f"{key}gbt."),
        gbt_max_depth=take(gbt, "max_depth", int, where, f"{key}gbt."),
        gbt_step_size=float(take(gbt, "step_size", (int, float), where, f"{key}gbt.")),
        gbt_subsampling_rate=float(take(gbt, "subsampling_rate", (int, float), where, f"{key}gbt.")),
        lr_reg_param=float(take(lr, "reg_param", (int, float), where, f"{key}logistic_regression.")),
        lr_elastic_net=float(take(lr, "elastic_net", (int, float), where, f"{key}logistic_regression.")),
        seed=values["seed"])
    bands = section(raw, "risk_bands", where)
    reject_unknown(bands, {"high", "medium"}, where, f"{key}risk_bands.")
    high = float(take(bands, "high", (int, float), where, f"{key}risk_bands."))
    medium = float(take(bands, "medium", (int, float), where, f"{key}risk_bands."))
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


def maintenance_settings(raw: dict, where: str) -> MaintenanceSettings:
    reject_unknown(raw, {"vacuum_retention_hours", "erasure_purge_immediately"}, where, "maintenance.")
    hours = take(raw, "vacuum_retention_hours", (int, float), where, "maintenance.")
    if hours < 168:
        # Delta refuses shorter retention unless its safety check is turned off, and with good
        # reason: a reader or a time-travel query older than that would lose its files.
        raise ConfigError(f"'maintenance.vacuum_retention_hours' is {hours}, below Delta's 168-hour safety minimum",
                          where=f"{where}: maintenance.vacuum_retention_hours",
                          fix="give 168 or more (time travel reaches back exactly this far)")
    purge_now = take(raw, "erasure_purge_immediately", bool, where, "maintenance.")
    return MaintenanceSettings(vacuum_retention_hours=float(hours), erasure_purge_immediately=purge_now)


def sql_settings(raw: dict, where: str) -> SqlSettings:
    key = "sql."
    reject_unknown(raw, {"host", "port", "role", "password_file", "hive_conf", "refresh_seconds", "sandbox_prefix",
                         "k_anonymity"}, where, key)
    k_anonymity = take(raw, "k_anonymity", int, where, key)
    if k_anonymity < 1:
        raise ConfigError(f"'sql.k_anonymity' is {k_anonymity}", where=f"{where}: sql.k_anonymity",
                          fix="give 1 or more: a city is shown where at least this many customers live (1 shows every city)")
    hive_conf = raw.get("hive_conf") or {}
    if not isinstance(hive_conf, dict):
        raise ConfigError("sql.hive_conf must be a mapping", where=f"{where}: {key}hive_conf",
                          fix="write it as `hive_conf: {hive.server2.authentication: LDAP}`")
    password_file = raw.get("password_file")
    return SqlSettings(
        host=str(take(raw, "host", str, where, key)), port=take(raw, "port", int, where, key),
        role=str(take(raw, "role", str, where, key)),
        password_file=absolute(str(password_file)) if password_file else None,
        hive_conf={str(k): spark_value(v) for k, v in hive_conf.items()},
        refresh_seconds=take(raw, "refresh_seconds", int, where, key),
        sandbox_prefix=sandbox_prefix(raw, where), k_anonymity=k_anonymity)


# Schemas the endpoint itself fills; a sandbox prefix that matched one would let analysts
# replace the masked views.
_SERVED_SCHEMAS = ("analytics", "bronze", "silver", "gold", "audit", "default", "global_temp")


def sandbox_prefix(raw: dict, where: str) -> str:
    prefix = str(take(raw, "sandbox_prefix", str, where, "sql.")).lower()
    clashes = [name for name in _SERVED_SCHEMAS if name.startswith(prefix)]
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix) or clashes:
        why = f"it would take in the schema {clashes[0]}" if prefix and clashes else "it is not a lower-case SQL name"
        raise ConfigError(f"'sql.sandbox_prefix' is '{prefix}': {why}", where=f"{where}: sql.sandbox_prefix",
                          fix="use a name such as sandbox_ (letters, digits, underscores)")
    return prefix


