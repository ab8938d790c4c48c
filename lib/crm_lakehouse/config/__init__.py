"""Load ``conf/`` once, at the edge, into typed and validated settings.

Layout: ``conf/base.yaml`` overlaid by ``conf/env/<env>.yaml`` (a deep merge: the overlay's keys
win), plus every ``conf/sources/*.yaml`` (:mod:`crm_lakehouse.config.sources`). Strings may use
``${VAR}`` (the variable must be set) or ``${VAR:-default}``. Every problem raises
:class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from crm_lakehouse.config import sections
from crm_lakehouse.config.checks import absolute, deep_merge, did_you_mean, interpolate, read_yaml, reject_unknown, \
    section, take
from crm_lakehouse.config.settings import (
    PROJECT_DIR, ChurnSettings, GeneratorSettings, GoldSettings, IdentitySettings, MaintenanceSettings, RegionConfig,
    RfmThresholds, CandidateParams, Settings, SilverSettings, SparkSettings, SqlSettings, join_path,
)
from crm_lakehouse.config.sources import (
    FORMATS, TEXT_FORMATS, CdcConfig, FieldSpec, SequenceSpec, SourceConfig, load_sources,
)
from crm_lakehouse.errors import ConfigError

__all__ = ["FORMATS", "TEXT_FORMATS", "CandidateParams", "CdcConfig", "ChurnSettings", "ConfigError", "FieldSpec",
           "GeneratorSettings", "GoldSettings", "IdentitySettings", "MaintenanceSettings", "RegionConfig",
           "RfmThresholds", "SequenceSpec", "Settings", "SilverSettings", "SourceConfig", "SparkSettings",
           "SqlSettings", "join_path", "load_settings", "resolve_conf_dir"]

# Used when neither --conf nor CRM_LAKEHOUSE_CONF nor ./conf is given.
PACKAGED_CONF_DIR = PROJECT_DIR / "conf"


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
            fix=f"use --env with one of: {', '.join(known)}{did_you_mean(env, known)}",
        )
    raw = deep_merge(read_yaml(base_file), read_yaml(env_file))
    where = f"{base_file} (+ {env_file.name})"
    raw = interpolate(raw, where, "")
    reject_unknown(raw, {"lakehouse", "spark", "regions", "channels", "generator", "silver", "gold", "churn", "sql",
                          "maintenance", "reporting_currency"}, where, "")

    lake = section(raw, "lakehouse", where)
    reject_unknown(lake, {"root", "landing", "checkpoints"}, where, "lakehouse.")
    root = absolute(lakehouse or take(lake, "root", str, where, "lakehouse."))
    landing_dir = absolute(landing) if landing else absolute(lake.get("landing") or join_path(root, "landing"))
    checkpoints = absolute(lake.get("checkpoints") or join_path(root, "_checkpoints"))

    spark = sections.spark_settings(section(raw, "spark", where), where, conf)
    regions = sections.regions(section(raw, "regions", where), where)
    channels = tuple(take(raw, "channels", list, where, ""))
    generator = sections.generator_settings(section(raw, "generator", where), where)
    sources = load_sources(conf / "sources", regions, channels)
    silver = sections.silver_settings(section(raw, "silver", where), where)
    reporting_currency = str(raw.get("reporting_currency") or "USD").strip().upper()
    if len(reporting_currency) != 3 or not reporting_currency.isalpha():
        raise ConfigError(f"reporting_currency '{raw.get('reporting_currency')}' is not an ISO 4217 code",
                          where=f"{where}: reporting_currency", fix="give a three-letter code such as USD, EUR or GBP")
    gold = sections.gold_settings(section(raw, "gold", where), where)
    churn = sections.churn_settings(section(raw, "churn", where), where)
    sql = sections.sql_settings(section(raw, "sql", where), where)
    maintenance = sections.maintenance_settings(section(raw, "maintenance", where), where)
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

