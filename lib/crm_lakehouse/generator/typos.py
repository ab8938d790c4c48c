"""The errors people make typing a customer into a CRM: a letter dropped, doubled, swapped or
mistyped in a name, street or city; first and last name swapped; a nickname for the first name;
a birth date a day or a decade off or with day and month swapped; one digit wrong in a phone;
a birth date or address left empty.

Each is drawn per source record (not per event), so every version a system holds of the record
carries the same mistake, as a record typed once does. Names written in Han characters get no
letter typos (a wrong character is another name, not a typo). Every hit changes the value: a
draw that would leave it as it was (swapping two equal letters) is not a hit and not counted.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.generator.columns import pick, uniform

# Name defects exclude each other (one draw), so a written name differs from the person's name
# exactly where one of them was injected.
NAME_DEFECTS = ("name_typo", "swapped_names", "nickname")
TYPO_DEFECTS = (*NAME_DEFECTS, "birth_date_typo", "phone_typo", "address_typo", "city_typo",
                "missing_birth_date", "missing_address")
# The nicknames people give for the generator's first names.
NICKNAMES = {
    "Robert": "Bob", "William": "Bill", "James": "Jim", "John": "Johnny", "Michael": "Mike", "Elizabeth": "Liz",
    "Jennifer": "Jen", "Patricia": "Pat", "Richard": "Rick", "Joseph": "Joe", "Jessica": "Jess", "Thomas": "Tom",
    "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Steven": "Steve", "Susan": "Sue", "Barbara": "Barb",
    "Christopher": "Chris", "Katherine": "Kate", "Alexander": "Alex", "Maximilian": "Max", "Alessandro": "Alex",
    "Francesco": "Franco", "Charlie": "Charles", "Harry": "Henry", "Samuel": "Sam", "Nancy": "Nan",
}
_LETTERS = "aeiourstnlmcdhkp"


def _record(seed: int, salt: str) -> Column:
    return uniform(seed, salt, "source", "source_customer_id")


def _letter_typo(text: Column, seed: int, salt: str) -> Column:
    """One edit at a drawn position past the first letter: deletion, a doubled letter, another
    letter, or two neighbours swapped."""
    length = F.length(text)
    at = (F.lit(2) + F.floor(_record(seed, salt + ":at") * F.greatest(length - 2, F.lit(1)))).cast("int")
    kind = F.floor(_record(seed, salt + ":kind") * 4).cast("int")
    head, here, after = F.substring(text, 1, at - 1), F.substring(text, at, 1), F.substring(text, at + 1, 10_000)
    other = pick(list(_LETTERS), _record(seed, salt + ":letter"))
    edited = (F.when(kind == 0, F.concat(head, after))
              .when(kind == 1, F.concat(head, here, here, after))
              .when(kind == 2, F.concat(head, other, after))
              .otherwise(F.concat(head, F.substring(after, 1, 1), here, F.substring(text, at + 2, 10_000))))
    return F.when(text.isNotNull() & (length >= 3) & ~text.rlike(r"\p{IsHan}"), edited)


def _one_digit_wrong(text: Column, seed: int, salt: str) -> Column:
    """The 1st, 2nd or 3rd digit from the end, one higher (9 becomes 0)."""
    which = F.floor(_record(seed, salt) * 3).cast("int")
    variants = []
    for back in range(3):
        pattern = r"^(.*?)(\d)((?:\D*\d){%d}\D*)$" % back
        digit = (F.regexp_extract(text, pattern, 2).cast("int") + 1) % 10
        variants.append(F.when(text.rlike(pattern), F.concat(
            F.regexp_extract(text, pattern, 1), digit.cast("string"), F.regexp_extract(text, pattern, 3))))
    return F.when(which == 0, variants[0]).when(which == 1, variants[1]).otherwise(variants[2])


def _birth_date_typo(birth: Column, seed: int) -> Column:
    """Day and month swapped where that is another valid date, else a day or a decade off."""
    kind = F.floor(_record(seed, "birth_typo:kind") * 3).cast("int")
    day, month = F.dayofmonth(birth), F.month(birth)
    swapped = F.when((day <= 12) & (day != month), F.make_date(F.year(birth), day, month))
    off = F.when(kind == 1, F.date_add(birth, F.when(day > 1, -1).otherwise(1))) \
        .otherwise(F.add_months(birth, F.when(F.year(birth) > 1960, -120).otherwise(120)))
    return F.when(birth.isNotNull(), F.coalesce(F.when(kind == 0, swapped), off))


def inject_typos(df: DataFrame, seed: int, rates: dict[str, float]) -> DataFrame:
    """``df`` (canonical customer rows, ``birth_date`` still a date) with one ``defect_<name>``
    flag per typo defect and the damaged values."""
    rate = lambda name: float(rates.get(name, 0.0))  # noqa: E731
    is_live = F.col("operation") != "delete" if "operation" in df.columns else F.lit(True)
    name = F.col("full_name")
    first = F.substring_index(name, " ", 1)
    rest = F.expr("substring(full_name, instr(full_name, ' ') + 1)")
    nickname = F.element_at(F.create_map(*[F.lit(v) for pair in sorted(NICKNAMES.items()) for v in pair]), first)
    draw = _record(seed, "name_error")
    bounds, low = {}, 0.0
    for defect in NAME_DEFECTS:
        bounds[defect] = (low, low + rate(defect))
        low += rate(defect)
    changed_name = {
        "name_typo": _letter_typo(name, seed, "name_typo"),
        "swapped_names": F.when(name.contains(" ") & ~name.rlike(r"\p{IsHan}"), F.concat_ws(" ", rest, first)),
        "nickname": F.when(nickname.isNotNull(), F.concat_ws(" ", nickname, rest)),
    }
    changes = {defect: (is_live & (draw >= lo) & (draw < hi), changed_name[defect], "full_name")
               for defect, (lo, hi) in bounds.items()}
    changes["birth_date_typo"] = (_record(seed, "birth_typo") < rate("birth_date_typo"),
                                  _birth_date_typo(F.col("birth_date"), seed), "birth_date")
    changes["phone_typo"] = (_record(seed, "phone_typo") < rate("phone_typo"),
                             _one_digit_wrong(F.col("phone"), seed, "phone_typo:which"), "phone")
    changes["address_typo"] = (_record(seed, "address_typo") < rate("address_typo"),
                               _letter_typo(F.col("address"), seed, "address_typo"), "address")
    changes["city_typo"] = (_record(seed, "city_typo") < rate("city_typo"),
                            _letter_typo(F.col("city"), seed, "city_typo"), "city")
    # A field left empty is drawn apart from its typo: a record has at most one of the two.
    empty_birth = _record(seed, "missing_birth_date") < rate("missing_birth_date")
    empty_address = _record(seed, "missing_address") < rate("missing_address")
    # Every flag is computed from the undamaged columns, in one projection (each withColumn
    # analyses the whole plan again).
    flags = {}
    for defect, (hit, value, field) in changes.items():
        if field == "birth_date":
            hit = hit & ~empty_birth
        if field == "address":
            hit = hit & ~empty_address
        # Flagged only where the value really changes.
        really = hit & value.isNotNull() & (value != F.col(field))
        flags[f"defect_{defect}"] = F.coalesce(really, F.lit(False))
    # A field left empty was not damaged, so its undamaged value decides the flag.
    flags["defect_missing_birth_date"] = F.coalesce(empty_birth & is_live & F.col("birth_date").isNotNull(), F.lit(False))
    flags["defect_missing_address"] = F.coalesce(empty_address & is_live & F.col("address").isNotNull(), F.lit(False))
    df = df.withColumns(flags)
    # Then each field once: the defects that hit one field (the name's) come from one draw, so at
    # most one of them holds for a record.
    damaged: dict[str, Column] = {}
    for defect, (_, value, field) in changes.items():
        case, flag = damaged.get(field), F.col(f"defect_{defect}")
        damaged[field] = F.when(flag, value) if case is None else case.when(flag, value)
    values = {field: case.otherwise(F.col(field)) for field, case in damaged.items()}
    values["birth_date"] = F.when(~F.col("defect_missing_birth_date"), values.get("birth_date", F.col("birth_date")))
    values["address"] = F.when(~F.col("defect_missing_address"), values.get("address", F.col("address")))
    return df.withColumns(values)
