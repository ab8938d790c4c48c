"""A class-data-sharing archive for the embedded Spark JVM: its classes parsed once, mapped after.

Each process that starts Spark loads and verifies the same ~20,000 classes before its first
query. Java's dynamic CDS archive (written with ``-XX:ArchiveClassesAtExit``, used with
``-XX:SharedArchiveFile``) keeps them in a file the next JVMs map: on the 2-core machine a
session plus its first Delta query went from 14.6 to 10.8 s (docs/development.md).

``make setup`` writes one archive per class path (the jobs', the SQL endpoint's) by running a
small Delta workload (class_archive_workload.py) in a child process and renaming the file into place only after that JVM has
exited, so no process ever maps a half-written archive. An archive is keyed by the java binary,
pyspark's version and the class path; a JVM that finds it stale refuses it on its own and runs
without (``-Xshare:auto``), so the archive can only make start-up faster. Under spark-submit in
client mode the driver runs on this machine, and ``deploy/spark-submit/submit.sh`` maps the jobs'
archive into it (``python -m crm_lakehouse.jvm_archive CACHE_DIR`` prints the options); the
cluster's JVMs are left alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The JVM's notes on classes it cannot archive (signed jars, generated accessors) are noise.
_QUIET = ("-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")
_WRITE_TO = "CRM_JVM_ARCHIVE_WRITE"
_KEPT = 4


def archive_path(cache_dir: Path, class_path: str) -> Path | None:
    java = shutil.which("java")
    if java is None:
        return None
    import pyspark

    binary = Path(java).resolve()
    key = hashlib.sha256(f"{binary}|{binary.stat().st_mtime_ns}|{pyspark.__version__}|{class_path}".encode())
    return cache_dir / f"spark-{key.hexdigest()[:16]}.jsa"


def java_options(cache_dir: Path, class_path: str = "") -> list[str]:
    """JVM options that map the archive for this java and ``class_path``; [] when there is none."""
    if os.environ.get(_WRITE_TO):
        return [f"-XX:ArchiveClassesAtExit={os.environ[_WRITE_TO]}", *_QUIET]
    archive = archive_path(cache_dir, class_path)
    return [f"-XX:SharedArchiveFile={archive}", *_QUIET] if archive and archive.is_file() else []


def write(cache_dir: Path, class_path: str) -> Path | None:
    """Write the archive for ``class_path`` (unless it exists) with a child process's JVM."""
    archive = archive_path(cache_dir, class_path)
    if archive is None or archive.is_file():
        return archive
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    done = subprocess.run([sys.executable, "-m", "crm_lakehouse.class_archive_workload", class_path],
                          env={**os.environ, _WRITE_TO: str(partial)}, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        print(f"no JVM class archive for this class path (Spark starts as fast as without): "
              f"{done.stderr.strip().splitlines()[-1:] or done.returncode}", file=sys.stderr)
        return None
    os.replace(partial, archive)
    # Archives of older keys (a previous pyspark, endpoint jar or java): keep the newest few.
    for old in sorted(cache_dir.glob("spark-*.jsa"), key=lambda p: p.stat().st_mtime)[:-_KEPT]:
        old.unlink(missing_ok=True)
    return archive


if __name__ == "__main__":
    print(" ".join(java_options(Path(sys.argv[1]))))
