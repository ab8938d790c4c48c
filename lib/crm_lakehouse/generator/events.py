"""What happens on a given export day, per entity, in canonical typed columns.

Each function returns the rows one export day K delivers, with a ``source`` column naming the
feed they belong to and a ``row_key`` that fixes every later random choice for that row (so a
replayed event is a byte-for-byte copy of the original).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.generator import names
from crm_lakehouse.generator.columns import pick, pick_by_key, poisson_like, randint, scrambled_id, uniform
from crm_lakehouse.generator.population import (
    DAILY_UPDATE_PROBABILITY, Plan, _address, _national_number, day_timestamp, dialling_code, in_latin_letters,
)

LATE_ORDER_PROBABILITY = 0.03
PRODUCTS_AT_SCALE_1 = 400
CURRENCIES = sorted(names.FX_BASE_USD_PER_UNIT)


def in_window(day: int, index: Column) -> Column:
    """Events of day index ``index`` belong to export day ``day`` (day 0 = all history)."""
    return index < 0 if day == 0 else index == day - 1


def _sequence(ts: Column, variant: int = 0) -> Column:
    # Tenths of a second since the epoch: increases with event time; the last digit keeps two
    # events of one key in the same second apart.
    return ts.cast("long") * 10 + F.lit(variant)


# --- customers (a CDC feed per CRM system) ---------------------------------------------------


def customer_events(registrations: DataFrame, plan: Plan, day: int) -> DataFrame:
    """Insert, update and delete events that export day ``day`` carries, plus stale and replayed ones."""
    seed = plan.seed
    rec = F.col("record_number")
    base = registrations.withColumn("signup_at", day_timestamp(plan, F.col("signup_index"), F.col("signup_second")))
    alive_before = lambda index: F.col("delete_index").isNull() | (F.col("delete_index") > index)  # noqa: E731

    inserts = base.where(in_window(day, F.col("signup_index"))).select(
        "*", F.col("signup_at").alias("updated_at"), F.lit("insert").alias("operation"),
        _sequence(F.col("signup_at")).alias("sequence_number"), F.lit("original").alias("event_kind"))

    if day == 0:
        update_index = F.col("update_index")
        updated = base.where(update_index.isNotNull() & (update_index < 0) & alive_before(update_index))
    else:
        update_index = F.lit(day - 1)
        updated = base.where((F.col("signup_index") < day - 1) & alive_before(day - 1)
                             & (uniform(seed, "daily_update", rec, F.lit(day)) < DAILY_UPDATE_PROBABILITY))
    updates = _changed(updated.withColumn("event_index", update_index), plan, f"update{day}").select(
        "*", F.lit("update").alias("operation"), F.lit("original").alias("event_kind"))

    deletes = base.where(in_window(day, F.col("delete_index"))).withColumn(
        "updated_at", day_timestamp(plan, F.col("delete_index"), randint(seed, "delete_second", 0, 86_399, rec)))
    deletes = deletes.select(
        *[F.lit(None).cast(dtype).alias(name) if name in _DELETE_BLANKS else F.col(name)
          for name, dtype in deletes.dtypes],
        F.lit("delete").alias("operation"), _sequence(F.col("updated_at")).alias("sequence_number"),
        F.lit("original").alias("event_kind"))

    frames = [inserts, updates, deletes]
    if day >= 1:
        existing = base.where((F.col("signup_index") < day - 1) & alive_before(day - 1))
        # A lagging replica delivers a change older than the history update already applied.
        stale = existing.where(F.col("update_index").isNotNull() & (F.col("update_index") < 0)
                               & (uniform(seed, "out_of_order", rec, F.lit(day)) < plan.rate("out_of_order_event")))
        stale = _changed(stale.withColumn("event_index", F.col("signup_index")), plan, f"stale{day}", variant=1)
        stale = stale.withColumn("updated_at", F.col("signup_at")).select(
            "*", F.lit("update").alias("operation"), F.lit("out_of_order").alias("event_kind"))
        stale = stale.withColumn("sequence_number", _sequence(F.col("signup_at"), 1))
        replay = existing.where(uniform(seed, "replay", rec, F.lit(day)) < plan.rate("replayed_event")).select(
            "*", F.col("signup_at").alias("updated_at"), F.lit("insert").alias("operation"),
            _sequence(F.col("signup_at")).alias("sequence_number"), F.lit("replayed").alias("event_kind"))
        frames += [stale, replay]

    columns = ["source", "channel", "person_id", "record_number", "source_customer_id", "full_name", "email",
               "phone_nsn", "country", "gender", "birth_date", "city", "address", "signup_at", "updated_at",
               "operation", "sequence_number", "event_kind", "latin_name", "cross_script"]
    events = frames[0].select(*columns)
    for frame in frames[1:]:
        events = events.unionByName(frame.select(*columns))
    events = in_latin_letters(events).withColumn(
        "defect_cross_script", F.col("cross_script") & (F.col("operation") != "delete")).drop("latin_name", "cross_script")
    events = events.withColumn("phone", _formatted_phone(seed, rec, F.col("phone_nsn"), F.col("country")))
    return events.withColumn("row_key", F.concat_ws("|", "source", "source_customer_id", "sequence_number")) \
        .drop("phone_nsn")


_DELETE_BLANKS = {"full_name", "email", "phone_nsn", "gender", "birth_date", "city", "address", "signup_at"}


def _changed(df: DataFrame, plan: Plan, salt: str, variant: int = 0) -> DataFrame:
    """The after-image of an update: a move (new city and address), sometimes a new phone or e-mail."""
    seed = plan.seed
    rec = F.col("record_number")
    when = day_timestamp(plan, F.col("event_index"), randint(seed, salt + ":second", 0, 86_399, rec))
    new_phone = uniform(seed, salt + ":phone", rec) < 0.2
    new_email = uniform(seed, salt + ":email", rec) < 0.1
    return df.select(
        *[c for c in df.columns if c not in {"city", "address", "phone_nsn", "email", "updated_at"}],
        pick_by_key(names.CITIES, F.col("country"), uniform(seed, salt + ":city", rec), fallback="US").alias("city"),
        _address(seed, salt + ":address", rec, F.col("country")).alias("address"),
        F.when(new_phone & F.col("phone_nsn").isNotNull(), _national_number(seed, rec * 31 + F.lit(len(salt)), F.col("country")))
        .otherwise(F.col("phone_nsn")).alias("phone_nsn"),
        F.when(new_email, F.concat(F.substring_index(F.col("email"), "@", 1), F.lit(".new@"),
                                   F.substring_index(F.col("email"), "@", -1))).otherwise(F.col("email")).alias("email"),
        when.alias("updated_at"),
        _sequence(when, variant).alias("sequence_number"),
    )


def _formatted_phone(seed: int, rec: Column, nsn: Column, country: Column) -> Column:
    """The same number written the way different clerks and apps write it."""
    cc = dialling_code(country)
    trunk = F.when(country.isin("DE", "FR", "GB"), F.lit("0")).otherwise(F.lit(""))
    grouped = F.regexp_replace(nsn, r"^(\d{3})(\d{3,4})(\d+)$", "$1 $2 $3")
    us_style = F.regexp_replace(nsn, r"^(\d{3})(\d{3})(\d{4})$", "($1) $2-$3")
    style = F.floor(uniform(seed, "phone_style", rec) * 6).cast("int")
    return (F.when(nsn.isNull(), F.lit(None))
            .when(style == 0, F.concat(F.lit("+"), cc, nsn))
            .when(style == 1, F.concat(F.lit("00"), cc, F.lit(" "), nsn))
            .when(style == 2, F.concat(F.lit("+"), cc, F.lit(" "), grouped))
            .when(style == 3, F.concat(trunk, nsn))
            .when((style == 4) & (country == "US"), us_style)
            .when(style == 4, F.concat(trunk, grouped))
            .otherwise(F.concat(F.lit("+"), cc, nsn)))


# --- orders (line grain) -----------------------------------------------------------------------


def order_lines(registrations: DataFrame, plan: Plan, day: int) -> DataFrame:
    """Order lines export day ``day`` delivers: the day's orders, and yesterday's late ones."""
    seed = plan.seed
    sources = {(s.region, s.channel): s.name for s in plan.sources("orders")}
    route = F.create_map(*[p for (region, channel), name in sorted(sources.items())
                           for p in (F.lit(f"{region}/{channel}"), F.lit(name))])
    df = registrations.withColumn("orders_source", F.element_at(route, F.concat_ws("/", "region", "channel")))
    df = df.where(F.col("orders_source").isNotNull())
    rec = F.col("record_number")
    stop = F.least(*[F.coalesce(F.col(c), F.lit(10 ** 6)) for c in ("churn_index", "delete_index")])
    if day == 0:
        df = _spread_over_history(df, seed, "order", F.col("order_rate"), stop, "order_seq", "order_index")
        df = df.withColumn("is_late", F.lit(False))
    else:
        frames = []
        for event_day, late in ((day - 1, False), (day - 2, True)):
            if event_day < 0:
                continue
            ordered = df.where(_happens_on(seed, "daily_order", event_day, F.col("order_rate"), stop))
            ordered = ordered.withColumn("order_seq", F.lit(2048 + event_day)).withColumn("order_index", F.lit(event_day))
            is_late = uniform(seed, "late_order", rec, F.lit(event_day)) < LATE_ORDER_PROBABILITY
            frames.append(ordered.where(is_late if late else ~is_late).withColumn("is_late", F.lit(late)))
        df = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    order_key = rec * 4096 + F.col("order_seq")
    df = df.withColumn("order_id", F.concat(F.upper(F.substring("orders_source", 1, 2)), F.lit("O"),
                                            F.lpad(scrambled_id(seed + 1, order_key).cast("string"), 12, "0")))
    df = df.withColumn("ordered_at", day_timestamp(plan, F.col("order_index"),
                                                   randint(seed, "order_second", 8 * 3600, 22 * 3600, order_key)))
    df = df.withColumn("line_count", randint(seed, "line_count", 1, 4, order_key).cast("int"))
    df = df.select("*", F.explode(F.sequence(F.lit(1), F.col("line_count"))).alias("line_number"))
    line_key = order_key * 8 + F.col("line_number")
    product_count = product_total(plan)
    df = df.withColumn("product_index", randint(seed, "product", 0, product_count - 1, line_key))
    df = df.withColumn("currency", _country_currency(F.col("country")))
    rate = fx_usd_per_unit(F.col("currency"), F.col("order_index"))
    df = df.withColumn("unit_price", F.round(product_price_usd(seed, F.col("product_index"))
                                             * (F.lit(0.95) + uniform(seed, "price_noise", line_key) * 0.1) / rate, 2))
    df = df.withColumn("quantity", randint(seed, "quantity", 1, 3, line_key).cast("int"))
    df = df.withColumn("discount", F.when(uniform(seed, "discount", line_key) < 0.2, F.round(
        F.col("unit_price") * F.col("quantity") * (F.lit(0.05) + uniform(seed, "discount_pct", line_key) * 0.15), 2))
        .otherwise(F.lit(0.0)))
    status_draw = uniform(seed, "status", order_key)
    df = df.withColumn("status", F.when(status_draw < 0.03, "returned").when(status_draw < 0.05, "cancelled")
                       .otherwise("completed"))
    df = df.withColumn("store_id", F.when(F.col("channel") == "store", F.concat(
        F.upper(F.col("region")), F.lit("-S"), F.lpad(randint(seed, "store", 1, 40, rec).cast("string"), 3, "0"))))
    df = df.withColumn("product_id", product_id(F.col("product_index")))
    return df.select(
        F.col("orders_source").alias("source"), "person_id", "order_id", "line_number", "source_customer_id",
        "ordered_at", "product_id", "quantity", "unit_price", "discount", "currency", "status", "store_id", "is_late",
        F.concat_ws("|", "order_id", "line_number").alias("row_key"),
    )


def _spread_over_history(df: DataFrame, seed: int, salt: str, daily_rate: Column, stop: Column,
                         sequence_column: str, index_column: str) -> DataFrame:
    """One row per history event: about ``daily_rate`` x active days of them, dated uniformly
    between sign-up and the earlier of ``stop`` (churn, deletion) and day 0."""
    rec = F.col("record_number")
    active_days = F.greatest(F.least(stop, F.lit(0)) - F.col("signup_index"), F.lit(0))
    df = df.withColumn("_events", poisson_like(seed, salt + "_count", daily_rate * active_days, rec))
    df = df.where(F.col("_events") > 0) \
        .select("*", F.explode(F.sequence(F.lit(1), F.col("_events"))).alias(sequence_column)).drop("_events")
    return df.withColumn(index_column, F.col("signup_index") + F.floor(
        uniform(seed, salt + "_day", rec, F.col(sequence_column)) * active_days).cast("int"))


def _happens_on(seed: int, salt: str, event_day: int, daily_rate: Column, stop: Column) -> Column:
    """Whether an active record has this kind of event on ``event_day``."""
    return (F.col("signup_index") <= event_day) & (stop > event_day) & \
        (uniform(seed, salt, F.col("record_number"), F.lit(event_day)) < daily_rate)


def _country_currency(country: Column) -> Column:
    return F.coalesce(F.element_at(F.create_map(*[p for k, v in names.COUNTRY_CURRENCY.items()
                                                  for p in (F.lit(k), F.lit(v))]), country), F.lit("USD"))


def fx_usd_per_unit(currency: Column, day_index: Column) -> Column:
    """The synthetic daily USD value of one unit of ``currency``: a smooth, deterministic drift."""
    bases = F.create_map(*[p for k, v in names.FX_BASE_USD_PER_UNIT.items() for p in (F.lit(k), F.lit(v))])
    phase = F.element_at(F.create_map(*[p for i, k in enumerate(CURRENCIES) for p in (F.lit(k), F.lit(float(i)))]), currency)
    drift = F.lit(1.0) + F.lit(0.04) * F.sin(day_index / 37.0 + phase) + F.lit(0.01) * F.sin(day_index / 5.3 + phase * 2)
    return F.round(F.when(currency == "USD", F.lit(1.0)).otherwise(F.element_at(bases, currency) * drift), 6)


# --- interactions ------------------------------------------------------------------------------


def interactions(registrations: DataFrame, plan: Plan, day: int) -> DataFrame:
    """Tickets, calls, e-mails and campaign responses, logged by each region's service desk."""
    seed = plan.seed
    desks = {}
    for source in plan.sources("interactions"):
        desks.setdefault(source.region, source.name)
    route = F.create_map(*[p for region, name in sorted(desks.items()) for p in (F.lit(region), F.lit(name))])
    df = registrations.withColumn("desk", F.element_at(route, F.col("region"))).where(F.col("desk").isNotNull())
    rec = F.col("record_number")
    # Unhappy customers keep calling for a while after they stop buying.
    stop = F.least(F.coalesce(F.col("churn_index") + 30, F.lit(10 ** 6)), F.coalesce(F.col("delete_index"), F.lit(10 ** 6)))
    if day == 0:
        df = _spread_over_history(df, seed, "contact", F.col("contact_rate"), stop, "contact_seq", "contact_index")
    else:
        event_day = day - 1
        df = df.where(_happens_on(seed, "daily_contact", event_day, F.col("contact_rate"), stop))
        df = df.withColumn("contact_seq", F.lit(2048 + event_day)).withColumn("contact_index", F.lit(event_day))
    key = rec * 4096 + F.col("contact_seq")
    kind = pick(names.INTERACTION_TYPES, uniform(seed, "contact_type", key))
    # Satisfaction falls with churn propensity; campaign responses are often unscored.
    score = F.least(F.lit(5), F.greatest(F.lit(1), F.round(
        F.lit(5.2) - F.col("churn_propensity") * 3.5 + (uniform(seed, "csat", key) - 0.5) * 2.0).cast("int")))
    unscored = (kind == "campaign_response") & (uniform(seed, "csat_missing", key) < 0.5) | \
        (uniform(seed, "csat_skipped", key) < 0.25)
    return df.select(
        F.col("desk").alias("source"), "person_id",
        F.concat(F.upper(F.col("region")), F.lit("-T"), F.lpad(scrambled_id(seed + 2, key).cast("string"), 12, "0"))
        .alias("interaction_id"),
        F.col("source").alias("customer_system"), "source_customer_id",
        kind.alias("interaction_type"),
        F.when(kind == "call", "phone").when(kind == "email", "email").when(kind == "campaign_response", "web")
        .otherwise(pick(["phone", "chat", "email", "store"], uniform(seed, "contact_via", key))).alias("interaction_channel"),
        day_timestamp(plan, F.col("contact_index"), randint(seed, "contact_second", 0, 86_399, key)).alias("occurred_at"),
        F.when(unscored, F.lit(None)).otherwise(score).cast("int").alias("satisfaction_score"),
        pick(names.INTERACTION_SUBJECTS, uniform(seed, "subject", key)).alias("subject"),
        F.when(kind == "campaign_response", F.concat(F.lit("CMP-"), randint(seed, "campaign", 100, 140, key).cast("string")))
        .alias("campaign_id"),
    ).withColumn("row_key", F.col("interaction_id"))


# --- reference data ----------------------------------------------------------------------------


def product_total(plan: Plan) -> int:
    return 40 + int(round(PRODUCTS_AT_SCALE_1 * plan.scale))


def product_id(index: Column) -> Column:
    return F.concat(F.lit("SKU"), F.lpad(index.cast("string"), 6, "0"))


def product_price_usd(seed: int, index: Column) -> Column:
    low_high = F.create_map(*[p for cat, (_, low, high) in names.PRODUCT_CATEGORIES.items()
                              for p in (F.lit(cat), F.array(F.lit(float(low)), F.lit(float(high))))])
    bounds = F.element_at(low_high, _product_category(index))
    draw = uniform(seed, "list_price", index)
    return F.round(F.element_at(bounds, 1) + (F.element_at(bounds, 2) - F.element_at(bounds, 1)) * draw * draw, 2)


def _product_category(index: Column) -> Column:
    categories = list(names.PRODUCT_CATEGORIES)
    return F.element_at(F.array(*[F.lit(c) for c in categories]), (index % len(categories)).cast("int") + 1)


def products(spark: SparkSession, plan: Plan, day: int) -> DataFrame:
    """The catalog on day 0; later days carry the few products whose list price changed."""
    seed = plan.seed
    source = plan.sources("products")
    if not source:
        return None  # type: ignore[return-value]
    df = spark.range(product_total(plan)).withColumnRenamed("id", "product_index")
    idx = F.col("product_index")
    category = _product_category(idx)
    items = F.create_map(*[p for cat, (items_, _, _) in names.PRODUCT_CATEGORIES.items()
                           for p in (F.lit(cat), F.array(*[F.lit(i) for i in items_]))])
    item_list = F.element_at(items, category)
    item = F.element_at(item_list, (F.floor(uniform(seed, "item", idx) * F.size(item_list)) + 1).cast("int"))
    price = product_price_usd(seed, idx)
    if day == 0:
        updated = day_timestamp(plan, F.lit(-plan.history_days), F.lit(0))
    else:
        df = df.where(uniform(seed, "price_change", idx, F.lit(day)) < 0.02)
        price = F.round(price * (F.lit(0.9) + uniform(seed, "new_price", idx, F.lit(day)) * 0.2), 2)
        updated = day_timestamp(plan, F.lit(day - 1), randint(seed, "price_second", 0, 86_399, idx))
    return df.select(
        F.lit(source[0].name).alias("source"),
        product_id(idx).alias("product_id"),
        F.concat_ws(" ", pick(names.BRANDS, uniform(seed, "brand", idx)), item,
                    F.concat(F.lit("M"), randint(seed, "model", 10, 99, idx).cast("string"))).alias("product_name"),
        category.alias("category"),
        pick(names.BRANDS, uniform(seed, "brand", idx)).alias("brand"),
        price.alias("list_price_usd"),
        updated.alias("updated_at"),
    ).withColumn("row_key", F.concat_ws("|", "product_id", F.col("updated_at").cast("string")))


def fx_rates(spark: SparkSession, plan: Plan, day: int) -> DataFrame:
    """Daily USD value of each currency: the whole history on day 0, one date per later day."""
    source = plan.sources("fx_rates")
    if not source:
        return None  # type: ignore[return-value]
    first, last = (-plan.history_days - 1, -1) if day == 0 else (day - 1, day - 1)
    days = spark.range(first, last + 1).withColumnRenamed("id", "day_index")
    currencies = spark.createDataFrame([(c,) for c in CURRENCIES], "currency string")
    df = days.crossJoin(currencies)
    start = F.lit(plan.start_date.isoformat()).cast("date")
    return df.select(
        F.lit(source[0].name).alias("source"),
        F.date_add(start, F.col("day_index").cast("int")).alias("rate_date"),
        "currency",
        fx_usd_per_unit(F.col("currency"), F.col("day_index")).alias("rate"),
    ).withColumn("row_key", F.concat_ws("|", F.col("rate_date").cast("string"), "currency"))
