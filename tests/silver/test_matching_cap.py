"""Which live records the matching model rescores because an e-mail or phone crossed the cap."""

from __future__ import annotations

from crm_lakehouse.silver.matching import crossed_the_cap

_PROFILE = "source string, source_customer_id string, email string, phone string"


def test_the_carriers_of_a_value_that_went_back_under_the_cap_are_rescored_and_no_others(spark):
    # cap 2: shared@ has three carriers before and two after (a1 moved away): it crossed. +1 has
    # two carriers before and after (b2 only changed its name): it did not. +7 went over (c1 took it).
    before = spark.createDataFrame([
        ("a", "1", "shared@", None), ("b", "1", "shared@", "+1"), ("b", "2", "shared@", "+1"),
        ("c", "1", None, None), ("d", "1", None, "+7"), ("d", "2", None, "+7")], _PROFILE)
    after = spark.createDataFrame([
        ("a", "1", "own@", None), ("b", "1", "shared@", "+1"), ("b", "2", "shared@", "+1"),
        ("c", "1", None, "+7"), ("d", "1", None, "+7"), ("d", "2", None, "+7")], _PROFILE)
    touched = spark.createDataFrame([("a", "1"), ("b", "2"), ("c", "1")], "source string, source_customer_id string")

    rescored = {(r["source"], r["source_customer_id"]) for r in
                crossed_the_cap(before, after, touched, cap=2).collect()}

    assert rescored == {("b", "1"), ("b", "2"), ("c", "1"), ("d", "1"), ("d", "2")}
