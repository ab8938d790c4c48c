"""Deterministic randomness as Spark columns: the same seed gives the same data on any cluster.

Every draw hashes (seed, a salt naming the draw, the row's keys), so values do not depend on
partitioning, executor count or row order, and a single day can be generated on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

_RESOLUTION = 1_000_000_007
# A prime above any id we permute (< 2^40), so the permutation below is a bijection.
_ID_PRIME = 999_999_999_989


def uniform(seed: int, salt: str, *keys: Column | str) -> Column:
    """A uniform draw in [0, 1) fixed by seed, salt and keys."""
    hashed = F.xxhash64(F.lit(seed), F.lit(salt), *keys)
    return F.pmod(hashed, F.lit(_RESOLUTION)).cast("double") / F.lit(float(_RESOLUTION))


def randint(seed: int, salt: str, low: int, high: int, *keys: Column | str) -> Column:
    """An integer in [low, high] inclusive."""
    return (F.lit(low) + F.floor(uniform(seed, salt, *keys) * F.lit(high - low + 1))).cast("long")


def pick(choices: Sequence, draw: Column) -> Column:
    """One of ``choices`` chosen by a uniform draw."""
    if not choices:
        return F.lit(None).cast("string")
    index = F.least(F.floor(draw * F.lit(len(choices))).cast("int"), F.lit(len(choices) - 1)) + F.lit(1)
    # Strings as one SQL array literal: one call into the JVM instead of one per choice (the
    # name lists hold hundreds, and the generator builds thousands of these).
    array = F.expr(f"array({', '.join(map(sql_string, choices))})") if all(isinstance(c, str) for c in choices) \
        else F.array(*[F.lit(c) for c in choices])
    return F.element_at(array, index)


def pick_by_key(table: dict[str, Sequence], key: Column, draw: Column, *, fallback: str) -> Column:
    """Like :func:`pick`, from the list that ``key`` (e.g. a country) selects."""
    expr = None
    for name, choices in table.items():
        branch = pick(choices, draw)
        expr = F.when(key == F.lit(name), branch) if expr is None else expr.when(key == F.lit(name), branch)
    return expr.otherwise(pick(table[fallback], draw))


def scrambled_id(seed: int, number: Column) -> Column:
    """A bijective scramble of a non-negative id below 10^12, so source ids reveal no person."""
    multiplier = 524_287 + (seed % 500_000)  # < 2^20: the product stays inside a signed long
    return F.pmod(number * F.lit(multiplier) + F.lit(seed * 7919 + 13), F.lit(_ID_PRIME))


def poisson_like(seed: int, salt: str, mean: Column, *keys: Column | str) -> Column:
    """A non-negative count with the given mean (two uniforms summed: cheap and bounded)."""
    draw = uniform(seed, salt + ":a", *keys) + uniform(seed, salt + ":b", *keys)
    return F.floor(draw * mean).cast("int")


def sql_string(value: str) -> str:
    """A Spark SQL string literal holding exactly ``value`` (its parser reads backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
