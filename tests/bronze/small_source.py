"""A lakehouse configured with one small source only, declared in YAML as a user would."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from crm_lakehouse.config import Settings, load_settings
from tests.conftest import REPO, settings_for

SOURCE = "br_partner_products"


def partner_products(tmp_path: Path) -> tuple[Settings, Path]:
    """Settings with only ``br_partner_products`` (a ``|``-separated CSV of products) and its
    landing folder, created empty."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    for file in (conf / "sources").glob("*.yaml"):
        file.unlink()
    (conf / "sources" / "br.yaml").write_text(textwrap.dedent(f"""\
        region: us
        sources:
          - name: {SOURCE}
            channel: partner
            entity: products
            format: csv
            path: br/partner/products
            options: {{header: true, sep: "|"}}
            columns: [codigo, nome, categoria]
            mapping: {{codigo: product_id, nome: product_name, categoria: category}}
        """), encoding="utf-8")
    landing = tmp_path / "landing" / "br" / "partner" / "products"
    landing.mkdir(parents=True)
    return settings_for(load_settings(conf, lakehouse=str(tmp_path)), tmp_path), landing
