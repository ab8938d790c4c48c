"""The JVM class archive's options: used when the archive for this java and class path exists,
written only where the setup step asks, keyed so that another class path never maps it."""

from __future__ import annotations

import os
import subprocess

import pytest

from crm_lakehouse import jvm_archive


def test_no_archive_means_no_option_and_an_archive_is_mapped_with_the_jvm_free_to_refuse_it(tmp_path):
    assert jvm_archive.java_options(tmp_path) == []
    archive = jvm_archive.archive_path(tmp_path, "")
    archive.write_bytes(b"written by make setup")
    options = jvm_archive.java_options(tmp_path)
    assert options[0] == f"-XX:SharedArchiveFile={archive}"
    assert "-Xshare:auto" in options  # a stale archive is refused by the JVM, which then runs without one


def test_each_class_path_has_its_own_archive(tmp_path):
    jobs = jvm_archive.archive_path(tmp_path, "")
    endpoint = jvm_archive.archive_path(tmp_path, "/x/delta.jar:/x/crm-sql.jar")
    assert jobs != endpoint and jobs.parent == endpoint.parent == tmp_path
    jobs.write_bytes(b"jobs")
    assert jvm_archive.java_options(tmp_path, "/x/delta.jar:/x/crm-sql.jar") == []


def test_the_setup_child_writes_where_it_is_told(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_JVM_ARCHIVE_WRITE", str(tmp_path / "a.jsa.1.partial"))
    assert jvm_archive.java_options(tmp_path)[0] == f"-XX:ArchiveClassesAtExit={tmp_path / 'a.jsa.1.partial'}"


def test_without_java_nothing_is_asked_of_the_jvm(tmp_path, monkeypatch):
    monkeypatch.setattr(jvm_archive.shutil, "which", lambda name: None)
    assert jvm_archive.archive_path(tmp_path, "") is None
    assert jvm_archive.java_options(tmp_path) == []


def test_writing_keeps_the_newest_archives_only(tmp_path, monkeypatch):
    """write() with a child that 'writes' a file instead of starting a JVM (the real child runs in make setup)."""
    kept = jvm_archive._KEPT

    for age in range(kept + 2):
        old = tmp_path / f"spark-old{age}.jsa"
        old.write_bytes(b"old")
        os.utime(old, (1000 + age, 1000 + age))

    def child(args, env, **_):
        open(env["CRM_JVM_ARCHIVE_WRITE"], "wb").write(b"archive")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(jvm_archive.subprocess, "run", child)
    archive = jvm_archive.write(tmp_path, "")
    assert archive.read_bytes() == b"archive" and not list(tmp_path.glob("*.partial"))
    assert sorted(p.name for p in tmp_path.glob("spark-*.jsa")) == \
        sorted([archive.name] + [f"spark-old{age}.jsa" for age in range(kept + 2)][-(kept - 1):])


@pytest.mark.e2e
def test_the_setup_child_really_writes_an_archive_and_a_jvm_it_does_not_fit_still_runs(tmp_path):
    """The real workload in a real JVM (what make setup runs); then a JVM whose class path the
    archive does not fit: refused with -Xshare:on, ignored with the options sessions get."""
    archive = jvm_archive.write(tmp_path, "")
    assert archive is not None and archive.stat().st_size > 10_000_000, "no archive was written"
    options = jvm_archive.java_options(tmp_path)
    strict = subprocess.run(["java", options[0], "-Xshare:on", "-version"], capture_output=True, text=True, timeout=120)
    assert strict.returncode != 0 and "shared class paths mismatch" in strict.stdout + strict.stderr
    tolerant = subprocess.run(["java", *options, "-version"], capture_output=True, text=True, timeout=120)
    assert tolerant.returncode == 0, tolerant.stderr
