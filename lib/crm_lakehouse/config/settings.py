"""The settings' types: what every layer reads, defined here so that no layer is imported by config.

The layers import their settings from here (gold its RFM thresholds, churn its candidates'
hyper-parameters, silver its identity and rule settings); :mod:`crm_lakehouse.config.sections`
builds them from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from crm_lakehouse.config.checks import did_you_mean
from crm_lakehouse.config.sources import SourceConfig
from crm_lakehouse.errors import ConfigError

# The installation's root (the repository, or where the package was unpacked): its conf/ is the
# default config and relative Ivy caches live under it.
PROJECT_DIR = Path(__file__).resolve().parents[3]

# What a quality rule may do with a row that breaks it (silver.rule_actions).
RULE_ACTIONS = ("warn", "quarantine", "fail")
# The deterministic identity keys (silver.identity.match_keys).
MATCH_KEYS = ("email", "phone", "name_birth_date")
# The churn model's candidate classifiers (churn.candidates).
CHURN_CANDIDATES = ("gbt", "logistic_regression")


@dataclass(frozen=True)
class RfmThresholds:
    """Upper bounds of scores 5..2 for recency (days since the last order, ascending), lower bounds
    of scores 2..5 for frequency (completed orders) and monetary value (lifetime net sales in the
    reporting currency)."""

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency_orders: tuple[int, int, int, int] = (2, 4, 7, 11)
    monetary: tuple[float, float, float, float] = (100.0, 300.0, 1000.0, 3000.0)
    interaction_window_days: int = 90


@dataclass(frozen=True)
class CandidateParams:
    """Hyper-parameters of both candidates (``churn.gbt`` / ``churn.logistic_regression``)."""

    gbt_max_iter: int = 60
    gbt_max_depth: int = 4
    gbt_step_size: float = 0.1
    gbt_subsampling_rate: float = 0.8
    lr_reg_param: float = 0.01
    lr_elastic_net: float = 0.0
    seed: int = 42

    def for_candidate(self, name: str) -> dict[str, float | int]:
        if name == "gbt":
            return {"max_iter": self.gbt_max_iter, "max_depth": self.gbt_max_depth, "step_size": self.gbt_step_size,
                    "subsampling_rate": self.gbt_subsampling_rate, "seed": self.seed}
        return {"reg_param": self.lr_reg_param, "elastic_net": self.lr_elastic_net}


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
    # A layer batch whose inputs changed fewer rows than this runs with Spark's expressions
    # interpreted instead of compiled: on a small batch, generating and compiling code for every
    # plan (Janino, then the JIT) costs more than the rows take. 0 keeps Spark's compiled default.
    interpreted_below_rows: int = 0
    # Bronze ingests this many sources at once. A small source's streaming query is mostly the
    # driver starting it and committing to Delta; another source's scan fills those waits.
    sources_at_once: int = 2


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
class MatchingSettings:
    """Probabilistic matching (``silver.identity.probabilistic``): two records link when their
    match weight is at least ``link_at``; from ``review_from`` up to it they wait in the review
    queue. ``model`` pins a model file; without one the first batch with at least
    ``min_training_records`` live records trains the model, which later batches keep.
    ``scoring_memory`` bounds DuckDB, which trains and scores in the driver's process and spills
    to disk beyond it (a DuckDB size: 512MB, 2GB)."""

    enabled: bool = True
    link_at: float = 10.0
    review_from: float = 4.0
    model: str | None = None
    min_training_records: int = 200
    scoring_memory: str = "512MB"


@dataclass(frozen=True)
class IdentitySettings:
    """How records of one person are linked: identifiers that never link, the cardinality cap,
    and probabilistic matching."""

    blocked_emails: frozenset[str]
    blocked_phones: frozenset[str]
    max_records_per_identifier: int
    match_keys: tuple[str, ...]
    probabilistic: MatchingSettings = MatchingSettings()


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
    """Gold marts: the RFM score thresholds, and whether
    the tables use deletion vectors (cheaper MERGEs; readers without support, such as
    delta-rs/deltalake and Polars, need them off)."""

    rfm: RfmThresholds
    deletion_vectors: bool = True


@dataclass(frozen=True)
class ChurnSettings:
    """The churn model: label, snapshots, candidates' hyper-parameters, MLflow."""

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
    params: CandidateParams
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
    # Schemas analysts may create (dbt's target); persisted under <root>/sql_warehouse.
    sandbox_prefix: str = "sandbox_"
    # The analytics views show a city only where at least this many customers live.
    k_anonymity: int = 5


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
            fix=f"use one of: {', '.join(s.name for s in self.sources)}{did_you_mean(name, [s.name for s in self.sources])}",
        )


def join_path(base: str, *parts: str) -> str:
    """Join path parts for local paths and storage URIs (s3a://, abfss://) alike."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])

