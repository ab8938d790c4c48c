"""Settings as every command gets them: the config's own checks, then those only a layer can make.

Config sits below the layers and cannot know, say, which quality rules the silver tables declare;
this module, above them, runs both before any Spark work starts.
"""

from __future__ import annotations

from pathlib import Path

from crm_lakehouse.config import Settings, load_settings
from crm_lakehouse.silver.rules import check_rule_actions


def load(conf_dir: str | Path | None = None, *, env: str = "local", lakehouse: str | None = None,
         landing: str | None = None) -> Settings:
    settings = load_settings(conf_dir, env=env, lakehouse=lakehouse, landing=landing)
    check_layer_settings(settings)
    return settings


def check_layer_settings(settings: Settings) -> None:
    check_rule_actions(settings)
