"""notebooks/customer_360_tour.ipynb runs top to bottom through the SQL endpoint, as an analyst would."""

from __future__ import annotations

import re

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO
from tests.notebooks.test_churn_model_review import notebook_text
from tests.sql.fixtures import ANALYST, ANALYST_PASSWORD


def test_customer_360_tour_runs_through_the_endpoint_and_shows_masked_pii(analyst_endpoint, monkeypatch):
    for name, value in (("CRM_SQL_HOST", analyst_endpoint.host), ("CRM_SQL_PORT", str(analyst_endpoint.port)),
                        ("CRM_SQL_USER", ANALYST), ("CRM_SQL_PASSWORD", ANALYST_PASSWORD)):
        monkeypatch.setenv(name, value)
    nb = nbformat.read(REPO / "notebooks" / "customer_360_tour.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    text = notebook_text(nb)
    assert re.search(r"customer C[0-9a-f]{15}: \d+ completed orders, latest ones:", text)
    assert re.search(r"email_masked\s+\S\*\*\*@\S+", text)
    images = sum(1 for cell in nb.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    assert images == 3  # segments, revenue by region x channel, monthly trend
    # The notebook used the endpoint, not a Spark session of its own.
    assert "SparkSession" not in "".join(cell.source for cell in nb.cells)
