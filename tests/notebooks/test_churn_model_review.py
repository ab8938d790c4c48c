"""notebooks/churn_model_review.ipynb runs top to bottom against a trained and scored lakehouse."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO


def notebook_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_churn_review_notebook_runs_and_rescoring_the_champion_matches_gold(churn_runs, monkeypatch):
    monkeypatch.setenv("CRM_LAKEHOUSE_ROOT", churn_runs.settings.root)
    nb = nbformat.read(REPO / "notebooks" / "churn_model_review.ipynb", as_version=4)
    # A failing cell raises CellExecutionError with the cell's traceback.
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    text = notebook_text(nb)
    assert f"champion: version {churn_runs.default.model_version}," in text
    assert f"{churn_runs.scoring.customers} customers re-scored, 0 differ from gold.churn_scores" in text
    images = sum(1 for cell in nb.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    assert images >= 4  # ROC, lift + calibration, feature importance, riskiest segments
