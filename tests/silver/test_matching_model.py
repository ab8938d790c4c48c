"""Which model a silver batch scores with: a pinned file, the stored newest version, or none yet;
and the one-line errors for a model file that is missing or is not a model."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from crm_lakehouse.config.settings import MatchingSettings
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.silver import matching
from crm_lakehouse.silver.contracts import IDENTITY_MODEL
from tests.conftest import PINNED_IDENTITY_MODEL


def stored(spark, *rows):
    return spark.createDataFrame(list(rows), IDENTITY_MODEL.schema)


def test_a_pinned_file_is_a_new_version_until_stored_then_the_stored_one(spark):
    pinned = MatchingSettings(model=str(PINNED_IDENTITY_MODEL))
    text = PINNED_IDENTITY_MODEL.read_text()
    first = matching.current_model(spark, pinned, stored(spark), batch_id=0, live_records=None)
    assert (first.version, first.is_new) == (1, True) and first.pinned == json.loads(text)

    row = (1, text, hashlib.sha256(text.encode()).hexdigest(), 238, str(PINNED_IDENTITY_MODEL),
           dt.datetime(2026, 1, 1), 0)
    kept = matching.current_model(spark, pinned, stored(spark, row), batch_id=1, live_records=None)
    assert (kept.version, kept.is_new) == (1, False)
    # The batch that stored it, rerun after a crash, still rescores everything with it.
    assert matching.current_model(spark, pinned, stored(spark, row), batch_id=0, live_records=None).is_new


def test_without_a_file_the_newest_stored_version_scores_and_too_few_records_train_nothing(spark):
    old, new = ({"splink": {}, "term_frequencies": {}, "training_records": n} for n in (10, 20))
    rows = [(v, json.dumps(m), "x", m["training_records"], None, dt.datetime(2026, 1, 1), b)
            for v, m, b in ((1, old, 0), (2, new, 3))]
    chosen = matching.current_model(spark, MatchingSettings(), stored(spark, *rows), batch_id=4, live_records=None)
    assert (chosen.version, chosen.pinned, chosen.is_new) == (2, new, False)

    few = spark.createDataFrame([("a:1", "a", "1")], "unique_id string, source string, source_customer_id string")
    assert matching.current_model(spark, MatchingSettings(min_training_records=2), stored(spark), batch_id=0,
                                  live_records=few) is None


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read the model file"),
    ("{not json", "is not a matching model"),
    ('{"comparisons": []}', "lacks splink, term_frequencies or training_records"),
])
def test_a_model_file_that_is_missing_or_no_model_is_one_clear_line(spark, tmp_path, content, expected):
    path = tmp_path / "model.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LakehouseError, match=expected) as refused:
        matching.model_file_text(spark, str(path))
    assert "silver.identity.probabilistic.model" in str(refused.value) and "\n" not in str(refused.value)
