"""The guard on the lakehouses the test processes share: a write into one fails the run."""

from __future__ import annotations

import pytest

from tests.conftest import kept_read_only


def test_a_file_written_into_a_shared_lakehouse_fails_at_teardown_and_reading_does_not(tmp_path):
    (tmp_path / "_delta_log").mkdir()
    (tmp_path / "_delta_log" / "0.json").write_text("{}")
    with kept_read_only(tmp_path, "one_shot"):
        (tmp_path / "_delta_log" / "0.json").read_text()
        (tmp_path / "_delta_log" / "0.json").write_text("{}")  # the same bytes again, as MLflow's loads do
    with pytest.raises(AssertionError, match=r"one_shot is shared read-only, but a test changed 1 of its files "
                                             r"\(_delta_log/1.json\): copy it before writing"):
        with kept_read_only(tmp_path, "one_shot"):
            (tmp_path / "_delta_log" / "1.json").write_text("{}")
