"""Data-quality expectations: named SQL conditions with an action, applied to a staged batch.

An expectation states what a good row looks like (``email IS NULL OR email_valid``). Per row
every broken rule is recorded; the action of the rules a row breaks decides its fate:

- ``warn``: the row is kept; the rule is counted in the batch's reconciliation;
- ``quarantine``: the row goes to ``silver.quarantine`` with every rule it broke;
- ``fail``: the batch stops before anything is written, naming the rule, table and a sample key.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.config.settings import RULE_ACTIONS
from crm_lakehouse.errors import LakehouseError

ACTIONS = RULE_ACTIONS
# Staging's list of "field: expression" a row's mapping expressions failed on (see mapping.py).
EXPRESSION_FAILURES = "_expression_failures"


class QualityError(LakehouseError):
    """A rule whose action is ``fail`` was broken: nothing of the batch was written."""


@dataclass(frozen=True)
class Expectation:
    """One rule: a SQL boolean over the staged row; a null result counts as broken.

    ``guards`` names the table contract constraint (NOT NULL or CHECK) that rejects every row
    breaking the rule: such a rule can quarantine or fail, never warn, or the write would fail.
    """

    name: str
    condition: str
    action: str = "quarantine"
    guards: str | None = None
    fix_hint: str | None = None   # what to do instead of making a guarded rule warn

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"expectation {self.name}: action must be one of {ACTIONS}, not {self.action!r}")


def mark(df: DataFrame, expectations: list[Expectation], *, table: str, key: str) -> DataFrame:
    """Add ``broken_rules`` (rule names, empty when clean) and ``is_quarantined``; raise on ``fail`` rules.

    The fail check runs one small query (the first offending key) only when fail rules exist.
    """
    broken = F.filter(F.array(*[F.when(~F.coalesce(F.expr(e.condition), F.lit(False)), F.lit(e.name))
                                for e in expectations]), lambda name: name.isNotNull()) \
        if expectations else F.array().cast("array<string>")
    # A mapping expression that failed on a row names itself (field and expression) as the rule.
    failed_expressions = F.coalesce(F.col(EXPRESSION_FAILURES), F.array().cast("array<string>")) \
        if EXPRESSION_FAILURES in df.columns else F.array().cast("array<string>")
    marked = df.withColumn("broken_rules", F.concat(broken, failed_expressions))
    fail_rules = [e.name for e in expectations if e.action == "fail"]
    if fail_rules:
        offender = marked.where(F.arrays_overlap("broken_rules", F.array(*[F.lit(n) for n in fail_rules]))) \
            .select(key, "broken_rules").first()
        if offender is not None:
            rule = next(n for n in offender["broken_rules"] if n in fail_rules)
            raise QualityError(f"rule '{rule}' failed on {table} (e.g. {key}={offender[key]!r}); nothing was written",
                               where=table, fix="correct the source data, or set the rule's action to quarantine")
    quarantine_rules = F.array(*[F.lit(e.name) for e in expectations if e.action == "quarantine"]) \
        if any(e.action == "quarantine" for e in expectations) else F.array().cast("array<string>")
    return marked.withColumn("is_quarantined", F.arrays_overlap(F.col("broken_rules"), quarantine_rules)
                             | (F.size(failed_expressions) > 0))


ACCEPTED, QUARANTINED, DUPLICATE = "accepted", "quarantined", "duplicate"

# Rules about the delivered record itself, checked for every entity before its own rules.
RECORD_RULES = [
    # Bronze noted that the record's file has other columns than declared (schema_evolution: quarantine).
    Expectation("file_matches_declared_columns", "file_problem IS NULL", "quarantine"),
    # U+FFFD is what a decoder writes for bytes invalid in the declared encoding: a file in
    # another encoding than its source declares would otherwise land as garbled names.
    Expectation("decodable_text", f"instr(raw_record, '{chr(0xFFFD)}') = 0", "quarantine"),
    # A CRM record is a few KB; megabytes in one field are a broken export, not a customer.
    Expectation("record_size_limit", "length(raw_record) <= 100000", "quarantine"),
]


def triage(df: DataFrame, expectations: list[Expectation], *, table: str, key: list[str],
           newest_first: list[Column]) -> DataFrame:
    """Give every row one ``fate``: quarantined, duplicate (another row of its key wins) or accepted.

    Among the clean rows of one key the first by ``newest_first`` wins; ties are broken by the
    raw record, so the choice does not depend on how files were split into batches.
    """
    # The sample key a fail message shows: the first business key column, not lineage.
    marked = mark(df, expectations, table=table, key=next((k for k in key if not k.startswith("_")), key[0]))
    rank = F.row_number().over(Window.partitionBy(*key).orderBy(*newest_first, F.col("raw_record")))
    clean = marked.where(~F.col("is_quarantined")).withColumn("fate", F.when(rank == 1, F.lit(ACCEPTED))
                                                                 .otherwise(F.lit(DUPLICATE)))
    rejected = marked.where(F.col("is_quarantined")).withColumn("fate", F.lit(QUARANTINED))
    return clean.unionByName(rejected).drop("is_quarantined")


def with_actions(expectations: list[Expectation], overrides: dict[str, str]) -> list[Expectation]:
    """The record rules and the declared ones, with the configured action overrides
    (``silver.rule_actions``) applied."""
    return [Expectation(e.name, e.condition, overrides.get(e.name, e.action), e.guards, e.fix_hint)
            for e in RECORD_RULES + expectations]

