"""File operations through Hadoop's FileSystem API, so local paths and storage URIs behave alike."""

from __future__ import annotations

from pyspark.sql import SparkSession


def _jvm_class(spark: SparkSession, name: str):
    # One call to the JVM for the whole name: ``jvm.org.apache.hadoop.fs.Path`` makes one per
    # package, and a batch creates a Path for every log file and checkpoint it reads.
    return getattr(spark.sparkContext._jvm, name)


def _fs(spark: SparkSession, path: str):
    hadoop_path = _path(spark, path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def _path(spark: SparkSession, path: str):
    return _jvm_class(spark, "org.apache.hadoop.fs.Path")(path)


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def list_files(spark: SparkSession, folder: str) -> list[str]:
    """Names (not paths) of the plain files directly inside ``folder``; empty if it does not exist."""
    fs, hadoop_path = _fs(spark, folder)
    if not fs.exists(hadoop_path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hadoop_path) if status.isFile())


def list_files_recursively(spark: SparkSession, folder: str) -> list[tuple[str, str]]:
    """Every file under ``folder``, sub-folders included, as (path relative to the folder, full
    qualified path); empty if the folder does not exist."""
    fs, hadoop_path = _fs(spark, folder)
    if not fs.exists(hadoop_path):
        return []
    prefix = str(fs.makeQualified(hadoop_path).toString()).rstrip("/") + "/"
    found, files = [], fs.listFiles(hadoop_path, True)
    while files.hasNext():
        path = str(files.next().getPath().toString())
        found.append((path[len(prefix):] if path.startswith(prefix) else path, path))
    return sorted(found)


def list_dirs(spark: SparkSession, folder: str) -> list[str]:
    """Names of the folders directly inside ``folder``; empty if it does not exist."""
    fs, hadoop_path = _fs(spark, folder)
    if not fs.exists(hadoop_path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hadoop_path) if status.isDirectory())


def rename(spark: SparkSession, source: str, target: str) -> None:
    """Move a file; on the local file system without its hidden ``.crc`` companion."""
    fs, source_path = _fs(spark, source)
    target_path = _path(spark, target)
    fs.mkdirs(target_path.getParent())
    if fs.exists(target_path):
        fs.delete(target_path, False)
    if not fs.rename(source_path, target_path):
        raise OSError(f"could not move {source} to {target}")
    _drop_checksum(spark, fs, target)


def _drop_checksum(spark: SparkSession, fs, path: str) -> None:
    # Hadoop's checksummed local file system writes (and moves) a hidden ``.crc`` beside each
    # file; a landing folder that mimics a CRM export should hold only the export.
    checksum = _path(spark, _sibling(path, "." + path.rsplit("/", 1)[-1] + ".crc"))
    if fs.exists(checksum):
        fs.delete(checksum, False)


def _sibling(path: str, name: str) -> str:
    return path.rsplit("/", 1)[0] + "/" + name


def delete(spark: SparkSession, path: str, *, recursive: bool = True) -> None:
    fs, hadoop_path = _fs(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, recursive)


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small UTF-8 file (a manifest), replacing any previous one."""
    write_bytes(spark, path, text.encode("utf-8"))


def write_bytes(spark: SparkSession, path: str, data: bytes) -> None:
    """Write a file of a few megabytes from the driver, replacing any previous one, without
    the local file system's ``.crc`` companion."""
    fs, hadoop_path = _fs(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    _drop_checksum(spark, fs, path)


def read_head(spark: SparkSession, path: str, max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes of a file (fewer when it is shorter), without a Spark job."""
    fs, hadoop_path = _fs(spark, path)
    stream = fs.open(hadoop_path)
    try:
        size = min(max_bytes, int(fs.getFileStatus(hadoop_path).getLen()))
        return bytes(_jvm_class(spark, "org.apache.commons.io.IOUtils").toByteArray(stream, size))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str:
    fs, hadoop_path = _fs(spark, path)
    stream = fs.open(hadoop_path)
    try:
        return str(_jvm_class(spark, "org.apache.commons.io.IOUtils").toString(stream, "UTF-8"))
    finally:
        stream.close()
