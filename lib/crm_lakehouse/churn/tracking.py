"""Where MLflow keeps runs and models, and the champion/challenger aliases of ``crm_churn``.

The store is chosen once per job: ``MLFLOW_TRACKING_URI`` (a tracking server on a cluster) wins,
then ``churn.tracking_uri`` from config, else a SQLite store inside the local lakehouse
(``<root>/mlflow/mlflow.db``, artifacts in ``<root>/mlflow/artifacts``). MLflow 3 would
otherwise write ``mlflow.db`` and ``mlruns/`` into whatever folder the job started in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from crm_lakehouse.config import Settings
from crm_lakehouse.errors import ConfigError, LakehouseError

CHAMPION = "champion"
CHALLENGER = "challenger"

# mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for child processes); a value equal
# to the one this module set is ours, not the user's choice of server.
_uri_we_set: str | None = None


class NoChampionError(LakehouseError):
    """Scoring was asked for but no model version holds the champion alias."""


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def local_store(settings: Settings) -> Path:
    return Path(settings.root.removeprefix("file://")) / "mlflow"


def _user_uri(settings: Settings) -> str | None:
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env and from_env != _uri_we_set:
        return from_env
    return settings.churn.tracking_uri


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking (and registry) URI this job uses."""
    uri = _user_uri(settings)
    if uri:
        return uri
    if not _is_local(settings.root):
        raise ConfigError(
            f"the lakehouse root '{settings.root}' is not a local folder, so it cannot hold the MLflow store",
            where=f"{settings.conf_dir}/env/{settings.env}.yaml: churn.tracking_uri",
            fix="set MLFLOW_TRACKING_URI (or churn.tracking_uri) to your MLflow tracking server")
    return f"sqlite:///{local_store(settings) / 'mlflow.db'}"


def artifact_location(settings: Settings) -> str | None:
    """Where new experiments keep artifacts: next to the local store, else the server's default."""
    if _user_uri(settings) or not _is_local(settings.root):
        return None
    return (local_store(settings) / "artifacts").as_uri()


def use_tracking(settings: Settings) -> str:
    """Point MLflow at this lakehouse's store and experiment; returns the experiment id."""
    import mlflow

    global _uri_we_set
    uri = tracking_uri(settings)
    artifacts = artifact_location(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    _uri_we_set = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_registry_uri(uri)
    name = settings.churn.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def champion_version(model_name: str):
    """The model version holding the champion alias, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def require_champion(settings: Settings):
    version = champion_version(settings.churn.registered_model)
    if version is None:
        raise NoChampionError(
            f"no champion churn model: '{settings.churn.registered_model}' has no version with alias "
            f"'{CHAMPION}' in {tracking_uri(settings)}", where="score_churn",
            fix="train one first: crm-lakehouse job train_churn (or set churn.train_if_no_champion: true)")
    return version


def ui_command(settings: Settings) -> str:
    """The command that opens the MLflow UI on this lakehouse's store."""
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        mlflow_cli = Path(sys.executable).parent / "mlflow"
        return f"{mlflow_cli} ui --backend-store-uri {uri} --port 5000, then open http://127.0.0.1:5000"
    return f"open {uri} in a browser"
