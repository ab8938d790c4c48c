"""The SQL endpoint: Spark's Thrift (HiveServer2) server over the lakehouse, with a PII-masked
``analytics`` schema for analysts, enforced in the engine, and password authentication."""
