"""What bronze decides on the driver before any Spark job: a CSV file's header, and whether a
source's stream has anything to do."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pytest
from pyspark.sql.streaming import StreamingQueryListener

from crm_lakehouse.bronze.ingest import csv_header, has_unseen_files, ingest_source, landing_path
from crm_lakehouse.config import join_path
from tests.bronze.small_source import partner_products

# (file bytes, reader options): shapes of real exports' first lines.
HEADERS = {
    "gb18030": ("会员编号,姓名,手机号码\n1,张伟,138\n".encode("gb18030"), {"encoding": "GB18030", "sep": ","}),
    "semicolon_bom": ("\ufeffKundenNr;Name;Ort\n1;Müller;Köln\n".encode("utf-8"), {"sep": ";"}),
    "quoted_with_separator": (b'"id","name, full","city"\r\n1,a,b\r\n', {}),
    "latin1_pipe": ("codigo|descrição|preço\n".encode("latin-1"), {"sep": "|", "encoding": "ISO-8859-1"}),
    "tab": (b"a\tb\tc\n1\t2\t3\n", {"sep": "\t"}),
    "no_newline": (b"only,one,line", {}),
}
# Only Spark can say what these hold: the header falls back to a Spark read.
UNDECIDED = {
    "binary": (bytes(range(256)) * 4, {}),
    "blank_first_line": (b"\n\na,b\n", {}),
    "quote_spans_lines": (b'"multi\nline",b\n', {}),
    "two_character_separator": (b"a||b\n", {"sep": "||"}),
    "unknown_charset": (b"a,b\n", {"encoding": "x-no-such-charset"}),
}


def csv_source(base_settings, options: dict):
    source = base_settings.source("eu_web_customers")
    return dataclasses.replace(source, options={"header": "true", **options})


@pytest.mark.parametrize("shape", sorted(HEADERS))
def test_csv_header_read_on_the_driver_equals_sparks_first_row(spark, base_settings, tmp_path, shape):
    content, options = HEADERS[shape]
    file = tmp_path / "export.csv"
    file.write_bytes(content)
    spark_row = spark.read.options(**options).option("header", "false").csv(str(file)).first()
    assert csv_header(spark, csv_source(base_settings, options), str(file)) == [str(v or "") for v in spark_row]


@pytest.mark.parametrize("shape", sorted(UNDECIDED))
def test_csv_header_leaves_to_spark_what_python_cannot_read_alike(spark, base_settings, tmp_path, shape):
    content, options = UNDECIDED[shape]
    file = tmp_path / "export.csv"
    file.write_bytes(content)
    assert csv_header(spark, csv_source(base_settings, options), str(file)) is None


def test_csv_header_of_a_compressed_file_is_left_to_spark(spark, base_settings, tmp_path):
    file = tmp_path / "export.csv.gz"
    file.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    assert csv_header(spark, csv_source(base_settings, {}), str(file)) is None


class StartedQueries(StreamingQueryListener):
    """Names of the streaming queries started while it listens (Spark posts the start event
    synchronously, before ``start()`` returns)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def onQueryStarted(self, event) -> None:
        self.names.append(event.name)

    def onQueryProgress(self, event) -> None:
        pass

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


def test_a_source_has_stream_work_only_for_unseen_files_or_an_uncommitted_batch(spark, tmp_path):
    settings, landing = partner_products(tmp_path)
    source = settings.source("br_partner_products")
    folder = landing_path(source, settings.landing)
    checkpoint = join_path(settings.checkpoints, "bronze", source.name)
    (landing / "produtos_1.csv").write_text("codigo|nome|categoria\nP1|Café|Grocery\n", encoding="utf-8")

    assert has_unseen_files(spark, folder, checkpoint)  # never ingested
    assert ingest_source(spark, settings, source).rows_added == 1
    assert not has_unseen_files(spark, folder, checkpoint)

    # Names the file source never reads change nothing.
    (landing / "_SUCCESS").write_text("")
    (landing / ".produtos_2.csv.crc").write_text("")
    assert not has_unseen_files(spark, folder, checkpoint)
    started = StartedQueries()
    spark.streams.addListener(started)
    try:
        assert ingest_source(spark, settings, source).rows_added == 0
        assert started.names == []  # nothing new: no streaming query at all
        (landing / "produtos_2.csv").write_text("codigo|nome|categoria\nP2|Chá|Grocery\n", encoding="utf-8")
        assert has_unseen_files(spark, folder, checkpoint)
        assert ingest_source(spark, settings, source).rows_added == 1
        assert started.names == [f"bronze_{source.name}"]
    finally:
        spark.streams.removeListener(started)

    assert not has_unseen_files(spark, folder, checkpoint)

    # A crash after the stream planned a batch and before it committed it: the stream must run
    # again to finish that batch, although its files are in the file log already.
    commits = Path(checkpoint) / "commits"
    last = max(int(f.name) for f in commits.iterdir() if f.name.isdigit())
    (commits / str(last)).unlink()
    assert has_unseen_files(spark, folder, checkpoint)
