"""Build what spark-submit ships to a cluster: the code as a zip for ``--py-files`` and the
config folder as a zip for ``--archives … #conf`` (cluster deploy mode, where the driver runs on
a cluster node and cannot see the submitter's files).

    python -m crm_lakehouse.package [--out dist] [--conf conf]   # prints the two paths

The archives are reproducible (sorted entries, fixed timestamps), so rebuilding unchanged code
gives byte-identical files and a scheduler's cache or checksum stays valid. Third-party packages
(pyspark, delta-spark, phonenumbers, mlflow…) are not inside: the cluster's Python has them —
the image in deploy/k8s, a Databricks library, or a packed venv shipped with ``--archives``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import crm_lakehouse
from crm_lakehouse.config import resolve_conf_dir

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def package_version() -> str:
    try:
        return version("crm-lakehouse")
    except PackageNotFoundError:
        return "0+unknown"


def build_code_zip(out_dir: Path) -> Path:
    """``crm_lakehouse-<version>.zip`` holding the importable package (Python files only)."""
    package_dir = Path(crm_lakehouse.__file__).resolve().parent
    files = sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)
    return _write_zip(out_dir / f"crm_lakehouse-{package_version()}.zip",
                      [(p, Path("crm_lakehouse") / p.relative_to(package_dir)) for p in files])


def build_conf_zip(out_dir: Path, conf_dir: str | Path | None = None) -> Path:
    """``crm_conf.zip``: base.yaml, env/, sources/, workflows.yaml… at the archive's top level."""
    conf = resolve_conf_dir(conf_dir)
    files = sorted(p for p in conf.rglob("*") if p.is_file() and not p.name.startswith("."))
    return _write_zip(out_dir / "crm_conf.zip", [(p, p.relative_to(conf)) for p in files])


def _write_zip(target: Path, entries: list[tuple[Path, Path]]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in entries:
            info = zipfile.ZipInfo(name.as_posix(), date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    partial.replace(target)  # a submit racing this build sees the old zip or the new, never half
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_lakehouse.package", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--conf", help="config folder to pack (default: as for crm-lakehouse)")
    args = parser.parse_args(argv)
    from crm_lakehouse.errors import LakehouseError

    try:
        print(build_code_zip(Path(args.out)))
        print(build_conf_zip(Path(args.out), args.conf))
    except LakehouseError as error:
        print(f"crm-lakehouse: error: {error.line()}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
