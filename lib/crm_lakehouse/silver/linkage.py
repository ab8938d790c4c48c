"""Probabilistic record linkage (Fellegi–Sunter) with Splink: which records that share no e-mail,
phone or exact name + birth date still belong to one person, because their names, birth dates and
addresses agree more than two strangers' would.

Splink generates the blocking, comparison and scoring SQL and trains the model without a
steward's labels: u probabilities from random pairs, m probabilities counted on the pairs a shared
e-mail or phone labels (or by expectation maximisation within blocks where there are too few).
Training runs on Splink's DuckDB backend on the driver, on records stored in its DuckDB
(:mod:`crm_lakehouse.silver.linkage_db`). Its Spark backend gives the same model
but runs each EM step as Spark jobs: 179 s instead of 3.2 s for 2,000 records on 2 cores
(docs/identity.md). Scoring runs on either backend from the saved model.

The compared fields come from :mod:`crm_lakehouse.silver.linkage_fields`; the silver batch uses
both through :mod:`crm_lakehouse.silver.matching`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from crm_lakehouse.silver.linkage_db import DUCKDB_MEMORY, StoredRecords, drop_splink_tables, store, stored
from crm_lakehouse.silver.linkage_fields import UNIQUE_ID

# The blocking rules that make the candidate pairs: records equal on every expression of one rule
# are compared (each an equality that a typo seldom breaks in all the rules at once). First name
# + city and surname + city were rules too: at scale 1 they made 17.6 of 22.5 million pairs and
# found 5 of 59,400 linked pairs that no other rule found (docs/identity.md).
BLOCKING = (
    ("birth_date",), ("name_latin_key",), ("surname", "substr(birth_date, 1, 4)"), ("email",), ("phone",),
    ("address", "city"),
)
# A pinned model keeps the term frequency of a value only when at least this many training
# records share it: a rarer value (most full names) is scored at its level's average weight, and
# the model does not hold the name of someone with one or two records. On the labelled fixture 3
# loses nothing against keeping every value; 5 costs 0.016 of precision at the same recall.
TF_MIN_RECORDS = 3

def within_one_edit(column: str):
    """Damerau-Levenshtein distance of ``column`` at most 1, computed only for the pairs that can be
    that close: lengths at most 1 apart, and equal on their first or their last L characters,
    L = (the shorter length - 1) // 2 — one edit at position k leaves the k characters before it
    and every character after it alike, and one of those runs is at least L long. The distance
    itself (quadratic in the length) then runs for a few pairs in a hundred: most strangers' e-mails
    share neither half. Scoring 6.4 million candidate pairs at scale 1 took 53.3 s with the bare
    distance on e-mail, phone and birth date and 15.4 s with the guard, every weight equal."""
    import splink.comparison_level_library as cll

    left, right = f"{column}_l", f"{column}_r"
    run = f"CAST(greatest(floor((least(length({left}), length({right})) - 1) / 2), 0) AS INT)"
    return cll.CustomLevel(
        f"abs(length({left}) - length({right})) <= 1 "
        f"AND (left({left}, {run}) = left({right}, {run}) OR right({left}, {run}) = right({right}, {run})) "
        f"AND damerau_levenshtein({left}, {right}) <= 1"
    ).configure(label_for_charts=f"Damerau-Levenshtein distance of {column} <= 1")


def model_settings():
    """Splink's settings: the comparisons with their levels, and the blocking rules that make the
    candidate pairs (each an equality a typo seldom breaks in all of them at once)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    same_year = "substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4)"
    day_month_swapped = (f"{same_year} AND substr(birth_date_l, 6, 2) = substr(birth_date_r, 9, 2) "
                         "AND substr(birth_date_l, 9, 2) = substr(birth_date_r, 6, 2)")
    names = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.NullLevel("name_concat"),
            cll.ExactMatchLevel("name_concat").configure(tf_adjustment_column="name_concat"),
            cll.ColumnsReversedLevel("first_name", "surname", symmetrical=True)
            .configure(tf_adjustment_column="surname"),
            # One name in characters and in pinyin ("王秀英", "Xiuying Wang"), or its words in
            # another order; homophones written with other characters meet here too, and the
            # term frequency of the pinyin weighs them.
            cll.ExactMatchLevel("name_latin_key").configure(
                tf_adjustment_column="name_latin_key",
                label_for_charts="same name in Latin letters (pinyin), words in any order"),
            cll.And(cll.ExactMatchLevel("surname"), cll.ArrayIntersectLevel("first_name_canonicals", 1))
            .configure(label_for_charts="surname equal, first names share a canonical form (nickname)"),
            cll.And(cll.JaroWinklerLevel("first_name", 0.9), cll.JaroWinklerLevel("surname", 0.9)),
            cll.DamerauLevenshteinLevel("name_concat", 2),
            cll.ExactMatchLevel("surname").configure(tf_adjustment_column="surname"),
            cll.ExactMatchLevel("first_name").configure(tf_adjustment_column="first_name"),
            cll.ElseLevel(),
        ],
        comparison_description="first name and surname",
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel(day_month_swapped).configure(label_for_charts="day and month swapped"),
            within_one_edit("birth_date"),
            cll.CustomLevel(same_year).configure(label_for_charts="same year"),
            cll.ElseLevel(),
        ],
        comparison_description="birth date",
    )
    phone = cl.CustomComparison(
        output_column_name="phone",
        comparison_levels=[cll.NullLevel("phone"), cll.ExactMatchLevel("phone"),
                           within_one_edit("phone"), cll.ElseLevel()],
        comparison_description="E.164 phone",
    )
    # An e-mail's user name mostly spells the person's name: "jun.wang149" and "jun.wang898" are
    # alike because the names are, so similarity beyond a typo would count the name twice.
    email = cl.CustomComparison(
        output_column_name="email",
        comparison_levels=[
            cll.NullLevel("email"),
            cll.ExactMatchLevel("email"),
            cll.ExactMatchLevel("email_user").configure(label_for_charts="same user name, another domain"),
            within_one_edit("email").configure(label_for_charts="one typing error apart"),
            cll.ElseLevel(),
        ],
        comparison_description="e-mail address",
    )
    # An address names a door only within its city: "Zhongshan Lu 207" is in every Chinese city,
    # so the same street and number in two cities counts as nothing (at scale 1 of the generator's
    # data it was most of the model's false links). A city typed by one side only does not count
    # against the address; another house number on the same street is a neighbour's door.
    same_city = cll.Or(cll.JaroWinklerLevel("city", 0.9), cll.CustomLevel("city_l IS NULL OR city_r IS NULL"))
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("address"),
            cll.And(cll.ExactMatchLevel("address"), same_city).configure(label_for_charts="same address"),
            cll.And(cll.ExactMatchLevel("house_number"), cll.JaroWinklerLevel("street", 0.88), same_city)
            .configure(label_for_charts="same house number, street alike"),
            cll.And(cll.JaroWinklerLevel("street", 0.88), same_city,
                    cll.CustomLevel("house_number_l IS NULL OR house_number_r IS NULL"))
            .configure(label_for_charts="street alike, a number missing"),
            cll.ElseLevel(),
        ],
        comparison_description="street address in the same city",
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=[
            names,
            birth,
            email,
            phone,
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            address,
        ],
        blocking_rules_to_generate_predictions=[block_on(*keys) for keys in BLOCKING],
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=True,
    )


def _splink_api(connection):
    from splink import DuckDBAPI

    return DuckDBAPI(connection)


# Pairs that share an e-mail or a phone are one person's (the hard keys link them): enough of them
# label the data for free, and m is counted on them instead of guessed by EM. Each key's own m is
# counted on the pairs the other key labels, so that no comparison is judged on pairs chosen by it.
MIN_LABELLED_PAIRS = 100
# No level is impossible for one person's records: a level that training saw for no true pair
# would otherwise rule every pair out (EM on the 242-record test fixture gave "another phone" a
# weight of -85). One true pair in a thousand bounds such a level near -10.
MIN_M_PROBABILITY = 1e-3
LABEL_KEYS = ("email", "phone")


def train(records, *, seed: int = 42, max_pairs: float = 1e6, memory: str = DUCKDB_MEMORY) -> dict:
    """The trained model (Splink's settings JSON with m and u) from linkage records (stored, an
    Arrow table or a pandas frame of :func:`linkage_records`), without a steward's labels.

    The prior comes from pairs the hard keys link (e-mail, phone, name + birth date) at an
    assumed recall of 0.7; u from random pairs. m is counted on the pairs that share an e-mail
    or a phone when each key labels at least :data:`MIN_LABELLED_PAIRS`; otherwise (exports
    without e-mails or phones) learned by EM within two blocks, each leaving the other
    comparisons free to be learned.
    """
    from splink import Linker, block_on

    # Splink warns of every level a block never observes (its m stays at the default): expected
    # for rare typos, and not something a user of the batch can act on.
    logging.getLogger("splink").setLevel(logging.ERROR)
    # In one order (stored records are), and with its sums rounded below, so that the same records
    # give the same model whichever partitions delivered them (EM's floating-point sums depend on
    # the row order).
    records = stored(records, memory=memory)
    api = _splink_api(records.connection)
    linker = Linker(api.register(records.table), model_settings(), log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone"), block_on("name_key", "birth_date")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    labels = {key: labelled_pairs(records, key) for key in LABEL_KEYS}
    if all(len(pairs) >= MIN_LABELLED_PAIRS for pairs in labels.values()):
        model = _m_from_labels(linker.misc.save_model_to_json(), api, records, labels)
    else:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_key"))
        model = linker.misc.save_model_to_json()
    drop_splink_tables(records.connection)
    # A random name per linker: without it, training twice on the same records gives one model.
    model.pop("linker_uid", None)
    model["probability_two_random_records_match"] = _rounded(model["probability_two_random_records_match"])
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if isinstance(level.get("m_probability"), float):
                level["m_probability"] = max(level["m_probability"], MIN_M_PROBABILITY)
            _unlearned_is_neutral(level, unseen_u=1 / max_pairs)
            for parameter in ("m_probability", "u_probability"):
                if isinstance(level.get(parameter), float):
                    level[parameter] = _rounded(level[parameter])
    return model


def _unlearned_is_neutral(level: dict, *, unseen_u: float) -> None:
    """A level that training never saw among true pairs (no m) counts for nothing: m = u. One
    seen among true pairs but in none of the random pairs sampled (a shared phone, among a
    million random pairs of 145,000 records) gets ``unseen_u``, one in the number sampled: the
    largest u that drawing it not once allows. Left unset, Splink would score either with its
    default m and u (spread by the level's rank), a weight that no data gave."""
    if level.get("is_null_level"):
        return
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is not None and u is None:
        level["u_probability"] = unseen_u
    elif m is None:
        level["m_probability"] = level["u_probability"] = u if u is not None else unseen_u


def labelled_pairs(records: StoredRecords, key: str):
    """(unique_id_l, unique_id_r): the pairs of records that share a value of ``key``."""
    return records.connection.execute(f"""
        SELECT a.{UNIQUE_ID} AS unique_id_l, b.{UNIQUE_ID} AS unique_id_r
        FROM {records.table} a JOIN {records.table} b ON a.{key} = b.{key} AND a.{UNIQUE_ID} < b.{UNIQUE_ID}
        ORDER BY 1, 2""").df()


def _m_from_labels(settings: dict, api, records, labels: dict) -> dict:
    """The model (``settings``: its prior and u trained) with m counted on labelled pairs: every
    comparison on all of them, but a label key's own comparison on the pairs the other keys label.

    Each count runs in a linker of its own: one linker keeps the median of every m it was trained
    with, which would mix the counts."""
    from splink import Linker

    def counted_on(pairs) -> dict:
        linker = Linker(api.register(records.table), settings, log_level=logging.ERROR)
        linker.training.estimate_m_from_pairwise_labels(api.register(pairs.drop_duplicates()))
        return linker.misc.save_model_to_json()

    own = {key: next(c for c in counted_on(pd.concat([pairs for other, pairs in labels.items() if other != key]))
                     ["comparisons"] if c["output_column_name"] == key)
           for key in labels}
    model = counted_on(pd.concat(list(labels.values())))
    model["comparisons"] = [own.get(c["output_column_name"], c) for c in model["comparisons"]]
    return model


def _rounded(value: float) -> float:
    return float(f"{value:.12g}")


def in_dialect(model: dict, sql_dialect: str) -> dict:
    """The trained model with its SQL written for another backend ("spark", "duckdb").

    Splink saves a model with SQL in the dialect it was trained in (DuckDB quotes identifiers
    with double quotes, which Spark reads as string literals), so the levels are made again from
    :func:`model_settings` in the target dialect and the learned parameters copied level by level.
    """
    target = model_settings().create_settings_dict(sql_dialect)
    target["probability_two_random_records_match"] = model["probability_two_random_records_match"]
    for comparison, trained in zip(target["comparisons"], model["comparisons"], strict=True):
        for level, learned in zip(comparison["comparison_levels"], trained["comparison_levels"], strict=True):
            for parameter in ("m_probability", "u_probability"):
                if parameter in learned:
                    level[parameter] = learned[parameter]
    return target


def pinned(model: dict, records, *, min_records: int = TF_MIN_RECORDS) -> dict:
    """The trained model with the term frequencies of its training records (see :func:`train`)
    shared by at least ``min_records``: what every later scoring uses, so a pair's weight does
    not depend on which batch scores it."""
    records = stored(records)
    frequencies = {}
    for column in term_frequency_columns(model):
        [(known,)] = records.connection.execute(f"SELECT count({column}) FROM {records.table}").fetchall()
        kept = records.connection.execute(
            f"SELECT {column}, count(*) FROM {records.table} WHERE {column} IS NOT NULL GROUP BY 1 "
            f"HAVING count(*) >= ?", [min_records]).fetchall()
        frequencies[column] = {str(value): float(n) / known for value, n in sorted(kept)}
    return {"splink": model, "term_frequencies": frequencies, "training_records": int(len(records))}


def train_pinned(records, *, seed: int = 42, memory: str = DUCKDB_MEMORY) -> dict:
    records = stored(records, memory=memory)
    return pinned(train(records, seed=seed), records)


def term_frequency_columns(model: dict) -> list[str]:
    return sorted({level["tf_adjustment_column"] for comparison in model["comparisons"]
                   for level in comparison["comparison_levels"] if level.get("tf_adjustment_column")})


def score(model: dict, changed, others=None, *, threshold_match_weight: float | None = None,
          memory: str = DUCKDB_MEMORY):
    """Every candidate pair (see :data:`BLOCKING`) that involves a ``changed`` record, scored with
    a :func:`pinned` model: each changed record against ``others`` and the changed records among
    themselves, never two others. With no others it is a full scoring of ``changed``.

    ``changed`` and ``others`` are stored records of one connection, or Arrow tables or pandas
    frames (then stored in a new one of ``memory``). Returns a pandas frame with ``unique_id_l``,
    ``unique_id_r``, ``match_weight``, ``match_probability`` and each comparison's level and
    weight (``gamma_*``, ``mw_*``); the pairs a full scoring would give, with its weights. The
    compared values stay in DuckDB: they are three quarters of Splink's output, and nothing after
    the scoring reads them.
    """
    from splink import Linker

    if not len(changed):
        return pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_weight", "match_probability"])
    changed, others = _stored_together(changed, others, memory)
    connection = changed.connection
    api = _splink_api(connection)
    settings = in_dialect(model["splink"], "duckdb")
    linker = Linker(api.register(changed.table), settings, log_level=logging.WARNING)
    prefix = settings.get("term_frequency_adjustment_column_prefix", "tf_")
    for column, frequencies in model["term_frequencies"].items():
        table = pd.DataFrame({column: pd.Series(list(frequencies), dtype="object"),
                              prefix + column: pd.Series(list(frequencies.values()), dtype="float64")})
        linker.table_management.register_term_frequency_lookup(api.register(table), column)
    new = api.register(changed.table)
    found = [linker.inference.predict_within(new, warning_mode="never",
                                             threshold_match_weight=threshold_match_weight)]
    if len(others):
        found.append(linker.inference.predict_between(api.register(others.table), new, warning_mode="never",
                                                      threshold_match_weight=threshold_match_weight))
    weight_prefix = settings.get("match_weight_column_prefix", "mw_")
    scored = pd.concat([_weights_only(connection, pairs.physical_name, weight_prefix) for pairs in found],
                       ignore_index=True)
    drop_splink_tables(connection)
    return scored


def _stored_together(changed, others, memory: str) -> tuple[StoredRecords, StoredRecords]:
    """``changed`` and ``others`` (none: no records) as tables of one connection."""
    changed = stored(changed, memory=memory)
    if isinstance(others, StoredRecords):
        if others.connection is not changed.connection:
            raise ValueError("changed and other records are stored in two DuckDB connections")
        return changed, others
    name = f"{changed.table}_others"
    if others is None:
        changed.connection.execute(f"CREATE OR REPLACE TABLE {name} AS FROM {changed.table} LIMIT 0")
        return changed, StoredRecords(changed.connection, name, 0)
    return changed, store(changed.connection, name, others)


def _weights_only(connection, table: str, weight_prefix: str):
    """A scored-pairs table's ids, weights and levels (a pandas frame), without the compared values."""
    columns = [name for name, *_ in connection.execute(f"SELECT * FROM {table} LIMIT 0").description]
    kept = [c for c in columns if c in ("unique_id_l", "unique_id_r", "match_weight", "match_probability")
            or c.startswith(("gamma_", weight_prefix))]
    return connection.execute(f"SELECT {', '.join(kept)} FROM {table}").df()


def candidate_pairs(changed, others=None, *, memory: str = DUCKDB_MEMORY) -> int:
    """How many pairs :func:`score` compares for these records: the distinct pairs that share a
    block (:data:`BLOCKING`), each involving a changed record, counted in DuckDB.

    Counted as Splink dedupes them, each pair under the first rule that blocks it, so no set of
    pairs is held: a distinct over a first load's 19 million pairs ran out of DuckDB's memory
    at scale 3."""
    if not len(changed):
        return 0
    changed, others = _stored_together(changed, others, memory)
    connection = changed.connection
    rules = range(len(BLOCKING))
    # One key per rule, null when any of its expressions is: null blocks nothing.
    keys = ", ".join(
        f"CASE WHEN {' AND '.join(f'({e}) IS NOT NULL' for e in expressions)} "
        f"THEN concat_ws('|', {', '.join(expressions)}) END AS k{number}"
        for number, expressions in enumerate(BLOCKING))
    for name, records in (("changed", changed), ("others", others)):
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {name}_keys AS SELECT {UNIQUE_ID} AS id, {keys} "
                           f"FROM {records.table}")

    def first_blocked_by(rule: int) -> str:
        return " AND ".join([f"a.k{rule} = b.k{rule}"] +
                            [f"NOT coalesce(a.k{earlier} = b.k{earlier}, false)" for earlier in range(rule)])

    count = 0
    for rule in rules:
        count += connection.execute(f"SELECT count(*) FROM changed_keys a JOIN changed_keys b "
                                    f"ON {first_blocked_by(rule)} AND a.id < b.id").fetchall()[0][0]
        count += connection.execute(f"SELECT count(*) FROM changed_keys a JOIN others_keys b "
                                    f"ON {first_blocked_by(rule)}").fetchall()[0][0]
    connection.execute("DROP TABLE changed_keys; DROP TABLE others_keys")
    return int(count)


def score_pairs_spark(spark: SparkSession, model: dict, records: DataFrame) -> DataFrame:
    """A full scoring of ``records`` in the Spark session (Splink's Spark backend), with the term
    frequencies of ``records`` (not a pinned model's): the backend the model's weights are
    checked against."""
    from splink import Linker, SparkAPI

    api = SparkAPI(spark_session=spark, break_lineage_method="persist")
    linker = Linker(api.register(records), in_dialect(model, "spark"), log_level=logging.WARNING)
    return linker.inference.predict().as_spark_dataframe()


def explained(model: dict, pairs):
    """The scored pairs with why: per comparison the level that matched (its label) and the
    weight it added (log2 of its Bayes factor, term-frequency adjustment included), beside the
    total ``match_weight`` and ``match_probability``; one row per pair, records in id order.
    ``model`` is the :func:`pinned` model that scored them."""

    model = model["splink"]
    weight_prefix = model.get("match_weight_column_prefix", "mw_")
    tf_prefix = weight_prefix + model.get("term_frequency_adjustment_column_prefix", "tf_") + "adj_"
    labels = {c["output_column_name"]: [lvl.get("label_for_charts", "") for lvl in c["comparison_levels"]
                                        if not lvl.get("is_null_level")][::-1] for c in model["comparisons"]}
    rows = []
    for pair in pairs.to_dict("records"):
        levels, weights = {}, {}
        for name, names in labels.items():
            gamma = int(pair[f"gamma_{name}"])
            levels[name] = "null" if gamma < 0 else names[gamma]
            # Splink's match-weight columns: the level's weight and its term-frequency adjustment.
            weights[name] = float(pair[f"{weight_prefix}{name}"]) + float(pair.get(f"{tf_prefix}{name}") or 0.0)
        left, right = sorted((pair["unique_id_l"], pair["unique_id_r"]))
        rows.append({"record_l": left, "record_r": right, "match_weight": float(pair["match_weight"]),
                     "match_probability": float(pair["match_probability"]), "levels": levels, "weights": weights})
    return pd.DataFrame(rows, columns=["record_l", "record_r", "match_weight", "match_probability", "levels",
                                       "weights"])


def decide(pairs, *, link_at: float, review_from: float, decisions=None):
    """(links, review) from :func:`explained` pairs and a data steward's decisions.

    A pair links at ``link_at`` or above, goes to the review queue between ``review_from`` and
    ``link_at``, and is dropped below. A steward's decision (``record_l``, ``record_r``,
    ``decision`` = confirm / reject) overrides the weight: a confirmed pair links, a rejected one
    neither links nor comes back for review. Each link says why: ``model`` or ``confirmed``.
    """

    decided = {} if decisions is None else {
        tuple(sorted((row["record_l"], row["record_r"]))): row["decision"] for row in decisions.to_dict("records")}
    verdict = [decided.get((left, right)) for left, right in zip(pairs.record_l, pairs.record_r)]
    verdict = pd.Series(verdict, index=pairs.index, dtype="object")
    confirmed, rejected = verdict == "confirm", verdict == "reject"
    linked = (confirmed | (pairs.match_weight >= link_at)) & ~rejected
    links = pairs[linked].assign(linked_by=["confirmed" if c else "model" for c in confirmed[linked]])
    review = pairs[~linked & ~rejected & ~confirmed & (pairs.match_weight >= review_from)]
    return links.reset_index(drop=True), review.reset_index(drop=True)


def clusters(links: Iterable[tuple[str, str]], records: Iterable[str], *,
             by: dict[str, str] | None = None) -> list[list[str]]:
    """The records grouped by the links closed transitively (or by the label ``by`` gives each)."""
    from crm_lakehouse.silver.identity import smallest_reachable

    if by is None:
        by = smallest_reachable(links)
    groups: dict[str, list[str]] = {}
    for record in records:
        groups.setdefault(by.get(record, record), []).append(record)
    return list(groups.values())


def pairwise_quality(predicted: Iterable[tuple[str, str]], truth: dict[str, str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of the linked record pairs against the true person of
    each record, after closing the links transitively (a cluster links all its pairs)."""
    def pairs_within(groups: Iterable[list[str]]) -> set[tuple[str, str]]:
        return {tuple(sorted((a, b))) for members in groups for i, a in enumerate(members) for b in members[i + 1:]}

    found = pairs_within(clusters(predicted, truth))
    true = pairs_within(clusters((), truth, by=truth))
    hits = len(found & true)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs_found": len(found), "true_pairs": len(true)}
