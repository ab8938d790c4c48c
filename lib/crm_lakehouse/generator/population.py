"""The synthetic population: people, and their records in each region's CRM systems.

Day indexes count from the generator's ``start_date`` (index 0). Day 0's export holds every event
before it (index < 0); day K >= 1 holds the events of index K - 1 plus late and replayed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.config import Settings, SourceConfig
from crm_lakehouse.generator import names
from crm_lakehouse.generator.columns import pick, pick_by_key, randint, scrambled_id, uniform

PEOPLE_AT_SCALE_1 = 100_000
# Share of people who sign up after day 0, spread over the following weeks, so every
# increment brings new customers.
FUTURE_SIGNUP_SHARE = 0.10
FUTURE_SIGNUP_DAYS = 60
SECOND_SYSTEM_PROBABILITY = 0.35
OTHER_EMAIL_PROBABILITY = 0.15  # a second system holds a work address: linkable only by phone
NO_PHONE_PROBABILITY = 0.08
DELETE_PROBABILITY = 0.03
# Records closed in the first weeks of increments, so every daily export carries deletes.
RECENT_DELETE_PROBABILITY = 0.04
RECENT_DELETE_DAYS = 20
HISTORY_UPDATE_PROBABILITY = 0.25
DAILY_UPDATE_PROBABILITY = 0.01


@dataclass(frozen=True)
class Plan:
    """What to generate, resolved from settings and the command line."""

    seed: int
    scale: float
    start_date: date
    history_days: int
    rates: dict[str, float]
    settings: Settings

    @property
    def people(self) -> int:
        return max(50, int(round(PEOPLE_AT_SCALE_1 * self.scale)))

    def sources(self, entity: str) -> list[SourceConfig]:
        return [s for s in self.settings.sources if s.entity == entity]

    def customer_source_index(self) -> dict[str, int]:
        """A stable small number per customer source, part of every scrambled source id."""
        return {s.name: i for i, s in enumerate(sorted(self.sources("customers"), key=lambda s: s.name))}

    def rate(self, name: str) -> float:
        return float(self.rates.get(name, 0.0))


def day_timestamp(plan: Plan, day_index: Column, second_of_day: Column) -> Column:
    """UTC timestamp of a second within a day index."""
    start = F.lit(plan.start_date.isoformat()).cast("date")
    return (F.date_add(start, day_index.cast("int")).cast("timestamp").cast("long") + second_of_day).cast("timestamp")


def people(spark: SparkSession, plan: Plan) -> DataFrame:
    """One row per synthetic person: who they are and how they behave (the ground truth).

    ``churn_propensity`` drives behaviour: a high propensity means fewer orders, more tickets,
    lower satisfaction, and a likely stop of all purchases at ``churn_index``.
    """
    seed = plan.seed
    regions = sorted({s.region for s in plan.sources("customers")})
    countries = {r: list(plan.settings.regions[r].countries) or ["US"] for r in regions}
    pid = F.col("person_id")
    df = spark.range(plan.people).withColumnRenamed("id", "person_id")
    df = df.withColumn("region", pick(regions, uniform(seed, "region", pid)))
    df = df.withColumn("country", pick_by_key(countries, F.col("region"), uniform(seed, "country", pid),
                                              fallback=regions[0]))
    is_cn = F.col("country") == "CN"
    cn_surname = F.floor(uniform(seed, "cn_surname", pid) * len(names.CN_SURNAMES)).cast("int")
    cn_given = F.floor(uniform(seed, "cn_given", pid) * len(names.CN_GIVEN)).cast("int")
    native_surname = F.element_at(F.array(*[F.lit(n) for n, _ in names.CN_SURNAMES]), cn_surname + 1)
    latin_surname = F.element_at(F.array(*[F.lit(l) for _, l in names.CN_SURNAMES]), cn_surname + 1)
    native_given = F.element_at(F.array(*[F.lit(n) for n, _, _ in names.CN_GIVEN]), cn_given + 1)
    latin_given = F.element_at(F.array(*[F.lit(l) for _, l, _ in names.CN_GIVEN]), cn_given + 1)
    cn_gender = F.element_at(F.array(*[F.lit(g) for _, _, g in names.CN_GIVEN]), cn_given + 1)
    first_index = _index_by_key(names.FIRST_NAMES, F.col("country"), uniform(seed, "first", pid), fallback="US")
    first = _element_by_key(names.FIRST_NAMES, F.col("country"), first_index, fallback="US")
    last = pick_by_key(names.LAST_NAMES, F.col("country"), uniform(seed, "last", pid), fallback="US")
    df = df.withColumn("full_name", F.when(is_cn, F.concat(native_surname, native_given))
                       .otherwise(F.concat_ws(" ", first, last)))
    # As a system outside China stores the name: given name first, in pinyin ("Xiuying Wang").
    df = df.withColumn("latin_name", F.when(is_cn, F.concat_ws(" ", F.initcap(latin_given), F.initcap(latin_surname))))
    df = df.withColumn("email_local", F.lower(F.when(is_cn, F.concat(latin_given, F.lit("."), latin_surname))
                                              .otherwise(F.concat_ws(".", _ascii(first), _ascii(last)))))
    domain = pick_by_key(names.EMAIL_DOMAINS, F.col("country"), uniform(seed, "domain", pid), fallback="US")
    # The whole person id: a shorter number (it was pid % 997) gave namesakes one address, which
    # the lakehouse rightly links (317 false pairs at scale 1).
    df = df.withColumn("email", F.concat(F.col("email_local"), pid.cast("string"), F.lit("@"), domain))
    df = df.withColumn("gender", F.when(is_cn, cn_gender).when(first_index % 2 == 0, "M").otherwise("F"))
    df = df.withColumn("birth_date", F.date_add(F.lit("1950-01-01").cast("date"),
                                                randint(seed, "birth", 0, 56 * 365, pid).cast("int")))
    df = df.withColumn("city", pick_by_key(names.CITIES, F.col("country"), uniform(seed, "city", pid), fallback="US"))
    df = df.withColumn("address", _address(seed, "address", pid, F.col("country")))
    df = df.withColumn("phone_nsn", _national_number(seed, pid, F.col("country")))
    signup_future = uniform(seed, "signup_when", pid) < FUTURE_SIGNUP_SHARE
    df = df.withColumn("signup_index", F.when(signup_future, randint(seed, "signup_future", 0, FUTURE_SIGNUP_DAYS - 1, pid))
                       .otherwise(randint(seed, "signup_past", -plan.history_days, -1, pid)).cast("int"))
    # Propensity to churn: skewed so that most customers are loyal and a minority at risk.
    df = df.withColumn("churn_propensity", F.round(F.pow(uniform(seed, "propensity", pid), F.lit(1.6)), 4))
    df = df.withColumn("churns", uniform(seed, "churns", pid) < F.col("churn_propensity"))
    horizon = plan.history_days + 180
    df = df.withColumn("churn_index", F.when(F.col("churns"), F.col("signup_index") + 30 + F.floor(
        uniform(seed, "churn_at", pid) * F.lit(horizon) * (F.lit(1.1) - F.col("churn_propensity"))).cast("int")))
    # Orders a day while active: loyal customers buy several times more often.
    df = df.withColumn("order_rate", F.lit(0.02) * (F.lit(1.3) - F.col("churn_propensity"))
                       * (F.lit(0.5) + uniform(seed, "rate", pid)))
    df = df.withColumn("contact_rate", F.lit(0.004) + F.lit(0.02) * F.col("churn_propensity"))
    return df.drop("email_local")


def registrations(people_df: DataFrame, plan: Plan) -> DataFrame:
    """One row per (person, customer source): the person's record in that CRM system.

    Every person is in one primary system of their region and, with some probability, in
    the region's other systems under other ids, sometimes with another e-mail address.
    """
    seed = plan.seed
    index = plan.customer_source_index()
    by_region: dict[str, list[SourceConfig]] = {}
    for source in plan.sources("customers"):
        by_region.setdefault(source.region, []).append(source)
    region_systems = F.create_map(*[
        part for region, sources in sorted(by_region.items()) for part in (
            F.lit(region),
            F.array(*[F.struct(F.lit(s.name).alias("source"), F.lit(s.channel).alias("channel"),
                               F.lit(index[s.name]).alias("source_index")) for s in sorted(sources, key=lambda s: s.name)]),
        )
    ])
    pid = F.col("person_id")
    systems = F.element_at(region_systems, F.col("region"))
    primary = F.floor(uniform(seed, "primary", pid) * F.size(systems)).cast("int")
    df = people_df.select("*", F.posexplode(systems).alias("position", "system"))
    df = df.withColumn("is_primary", F.col("position") == primary)
    df = df.where(F.col("is_primary") | (uniform(seed, "second_system", pid, F.col("system.source")) < SECOND_SYSTEM_PROBABILITY))
    df = df.withColumn("cross_script", F.lit(False)).unionByName(_abroad(people_df, plan, by_region, index))
    df = df.select(
        "*",
        F.col("system.source").alias("source"),
        F.col("system.channel").alias("channel"),
        (pid * 16 + F.col("system.source_index")).alias("record_number"),
    ).drop("system", "position")
    rec = F.col("record_number")
    df = df.withColumn("source_customer_id", F.concat(
        F.upper(F.substring(F.col("source"), 1, 2)), F.upper(F.substring(F.col("channel"), 1, 2)),
        F.lpad(scrambled_id(seed, rec).cast("string"), 12, "0")))
    other_email = ~F.col("is_primary") & (uniform(seed, "other_email", rec) < OTHER_EMAIL_PROBABILITY)
    df = df.withColumn("email", F.when(other_email, F.concat(
        F.substring_index(F.col("email"), "@", 1), F.lit(".work@"),
        pick(["company.com", "corp.example.org", "firm.net"], uniform(seed, "work_domain", rec)))).otherwise(F.col("email")))
    df = df.withColumn("phone_nsn", F.when(uniform(seed, "no_phone", rec) < NO_PHONE_PROBABILITY, F.lit(None))
                       .otherwise(F.col("phone_nsn")))
    df = df.withColumn("signup_index", F.when(F.col("is_primary"), F.col("signup_index"))
                       .otherwise(F.col("signup_index") + randint(seed, "later_signup", 0, 120, rec).cast("int")))
    df = df.withColumn("signup_second", randint(seed, "signup_second", 0, 86_399, rec))
    delete_draw = uniform(seed, "deleted", rec)
    deleted_in_history = delete_draw < DELETE_PROBABILITY
    deleted_recently = (delete_draw >= DELETE_PROBABILITY) & (delete_draw < DELETE_PROBABILITY + RECENT_DELETE_PROBABILITY)
    df = df.withColumn("delete_index", F.when(deleted_in_history, F.col("signup_index") + 20
                                              + randint(seed, "delete_at", 0, plan.history_days, rec).cast("int"))
                       .when(deleted_recently, F.greatest(F.col("signup_index") + 1,
                                                          randint(seed, "recent_delete_at", 0, RECENT_DELETE_DAYS - 1, rec)))
                       .cast("int"))
    df = df.withColumn("update_index", F.when(
        (uniform(seed, "history_update", rec) < HISTORY_UPDATE_PROBABILITY) & (F.col("signup_index") < -2),
        F.col("signup_index") + 1 + F.floor(uniform(seed, "history_update_at", rec)
                                            * (F.lit(-1) - F.col("signup_index") - 1)).cast("int")))
    return df


def _abroad(people_df: DataFrame, plan: Plan, by_region: dict[str, list[SourceConfig]],
            index: dict[str, int]) -> DataFrame:
    """The record a Chinese customer also has in a system of another region (rate ``cross_script``),
    with the name, city and street written in pinyin there (see :func:`in_latin_letters`): one
    system stores "王秀英", another "Xiuying Wang", and no shared key may link them."""
    seed = plan.seed
    pid = F.col("person_id")
    everywhere = F.array(*[
        F.struct(F.lit(s.name).alias("source"), F.lit(s.channel).alias("channel"), F.lit(index[s.name]).alias("source_index"),
                 F.lit(region).alias("region"))
        for region, sources in sorted(by_region.items()) for s in sorted(sources, key=lambda s: s.name)])
    elsewhere = F.filter(everywhere, lambda system: system["region"] != F.col("region"))
    which = F.floor(uniform(seed, "abroad_system", pid) * F.size(elsewhere)).cast("int")
    abroad = people_df.where((F.col("country") == "CN") & (uniform(seed, "abroad", pid) < plan.rate("cross_script")))
    # try_: with one region there is no elsewhere. (ANSI element_at would fail on the empty array,
    # and, being non-nullable, let the optimizer drop the null check that keeps those rows out.)
    abroad = abroad.withColumn("system", F.try_element_at(elsewhere, which + 1)).where(F.col("system").isNotNull())
    # The record belongs to that system's region: its orders and tickets go to that region's feeds.
    return abroad.select(
        *[c for c in people_df.columns if c != "region"], F.col("system.region").alias("region"),
        F.lit(-1).alias("position"), F.col("system").dropFields("region").alias("system"),
        F.lit(False).alias("is_primary"), F.lit(True).alias("cross_script"))


def in_latin_letters(df: DataFrame) -> DataFrame:
    """``full_name``, ``city`` and ``address`` in pinyin on the ``cross_script`` records."""
    city = F.create_map(*[F.lit(v) for pair in sorted(names.CN_CITIES_LATIN.items()) for v in pair])
    street = names.CN_STREETS_LATIN
    latin_address = F.concat_ws(" ", F.element_at(F.create_map(*[F.lit(v) for pair in sorted(street.items()) for v in pair]),
                                                   F.regexp_extract("address", r"^(\D+?)\d", 1)),
                                F.regexp_extract("address", r"(\d+)", 1))
    latin = F.col("cross_script")
    return (df.withColumn("full_name", F.when(latin & F.col("full_name").isNotNull(), F.col("latin_name"))
                          .otherwise(F.col("full_name")))
            .withColumn("city", F.when(latin, F.coalesce(F.element_at(city, F.col("city")), F.col("city")))
                        .otherwise(F.col("city")))
            .withColumn("address", F.when(latin & F.col("address").isNotNull(), latin_address).otherwise(F.col("address"))))


def _index_by_key(table: dict[str, list], key: Column, draw: Column, *, fallback: str) -> Column:
    """A position in the list that ``key`` selects, drawn uniformly."""
    expr = None
    for name, choices in table.items():
        branch = F.floor(draw * len(choices)).cast("int")
        expr = F.when(key == name, branch) if expr is None else expr.when(key == name, branch)
    return expr.otherwise(F.floor(draw * len(table[fallback])).cast("int"))


def _element_by_key(table: dict[str, list], key: Column, index: Column, *, fallback: str) -> Column:
    expr = None
    for name, choices in table.items():
        branch = F.element_at(F.array(*[F.lit(c) for c in choices]), index + 1)
        expr = F.when(key == name, branch) if expr is None else expr.when(key == name, branch)
    return expr.otherwise(F.element_at(F.array(*[F.lit(c) for c in table[fallback]]), index + 1))


def _ascii(name: Column) -> Column:
    """Latin letters for an e-mail local part: accents dropped, spaces and apostrophes removed."""
    return F.regexp_replace(F.translate(name, "äöüßéèêëáàâíìîóòôúùûñçÄÖÜÉÁÍÓÚÑÇ", "aousseeeeaaaiiiooouuuncAOUEAIOUNC"),
                            "[^A-Za-z]", "")


def _address(seed: int, salt: str, key: Column, country: Column) -> Column:
    street = pick_by_key(names.STREETS, country, uniform(seed, salt + ":street", key), fallback="US")
    number = randint(seed, salt + ":number", 1, 250, key).cast("string")
    return F.when(country == "CN", F.concat(street, number, F.lit("号"))) \
        .when(country.isin("US", "GB"), F.concat_ws(" ", number, street)) \
        .otherwise(F.concat_ws(" ", street, number))


def _national_number(seed: int, key: Column, country: Column) -> Column:
    """National significant number (no trunk prefix) following the country's numbering plan."""
    expr = None
    for code, (prefixes, digits, _, lowest) in names.PHONE_PLANS.items():
        number = F.concat(pick(prefixes, uniform(seed, "phone_prefix", key)),
                          F.lpad(randint(seed, "phone_digits", lowest, 10 ** digits - 1, key).cast("string"), digits, "0"))
        expr = F.when(country == code, number) if expr is None else expr.when(country == code, number)
    return expr.otherwise(F.lit(None))


def dialling_code(country: Column) -> Column:
    expr = None
    for code, (_, _, cc, _) in names.PHONE_PLANS.items():
        expr = F.when(country == code, F.lit(cc)) if expr is None else expr.when(country == code, F.lit(cc))
    return expr.otherwise(F.lit("1"))
