"""Compile the endpoint's two Java classes (access policy, password check) against the jars in
the pyspark wheel, once per source change, into the project's cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from crm_lakehouse.errors import DependencyError

SOURCES = Path(__file__).resolve().parent / "java"
POLICY_CLASS = "crm.sql.AnalystAccessPolicy"
AUTHENTICATOR_CLASS = "crm.sql.PasswordFileAuthenticator"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def endpoint_jar(cache_dir: Path) -> Path:
    """The compiled jar, built now if the sources changed since the last build."""
    sources = sorted(SOURCES.rglob("*.java"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    jar = cache_dir / f"crm-sql-{digest}.jar"
    if jar.is_file():
        return jar
    javac = shutil.which("javac")
    if javac is None:
        raise DependencyError("javac was not found, so the SQL endpoint's classes cannot be compiled",
                              where="PATH", fix="install a Java 17 JDK (not only the JRE)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        done = subprocess.run([javac, "--release", "17", "-nowarn", "-cp", str(spark_home() / "jars" / "*"),
                               "-d", classes, *map(str, sources)], capture_output=True, text=True)
        if done.returncode != 0:
            raise DependencyError(f"compiling the SQL endpoint's classes failed: {done.stderr.strip()[:400]}",
                                  where=str(SOURCES), fix="use the Java 17 JDK that Spark runs on")
        partial = jar.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w") as archive:
            for file in sorted(Path(classes).rglob("*.class")):
                archive.write(file, file.relative_to(classes).as_posix())
        partial.replace(jar)
    for old in cache_dir.glob("crm-sql-*.jar"):
        if old != jar:
            old.unlink()
    return jar


def default_cache_dir(settings) -> Path:
    """Next to the project's Ivy cache (``.cache/sql``), else the user's cache folder."""
    base = Path(settings.spark.ivy_cache).parent if settings.spark.ivy_cache else Path.home() / ".cache" / "crm-lakehouse"
    return base / "sql"


def endpoint_class_path(settings, jar: Path) -> str:
    """The server's driver class path: Thrift sessions are created on the server's own threads,
    which see only the JVM's class path, so Delta and our classes must be on it."""
    from crm_lakehouse.spark import delta_jar_files

    return os.pathsep.join([*delta_jar_files(settings.spark), str(jar)])


if __name__ == "__main__":  # `make setup` compiles the classes once, then archives the JVM's classes
    from crm_lakehouse import jvm_archive
    from crm_lakehouse.config import load_settings

    settings = load_settings()
    jar = endpoint_jar(default_cache_dir(settings))
    print(f"SQL endpoint classes: {jar}")
    if settings.spark.ivy_cache:
        archives = Path(settings.spark.ivy_cache).parent / "jvm"
        for class_path in ("", endpoint_class_path(settings, jar)):
            print(f"JVM class archive: {jvm_archive.write(archives, class_path)}")
