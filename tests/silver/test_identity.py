"""Identity clustering: the driver's union-find and Spark's label propagation agree."""

from __future__ import annotations

from crm_lakehouse.silver.identity import connected_components


def _components(spark, edges: list[tuple[str, str]], nodes: list[str], *, driver_edges: int) -> dict[str, str]:
    node_rows = spark.createDataFrame([(n,) for n in nodes], "node string")
    edge_rows = spark.createDataFrame(edges, "node string, neighbour string")
    return {r["node"]: r["component"] for r in
            connected_components(node_rows, edge_rows, driver_edges=driver_edges).collect()}


def test_small_graphs_are_solved_on_the_driver_with_the_same_labels_as_label_propagation(spark):
    # A chain whose smallest node sits at the far end (the worst case for propagation), a star,
    # two stars joined through a leaf, and an isolated node.
    edges = [("e", "d"), ("d", "c"), ("c", "b"), ("b", "a"),
             ("k", "h"), ("k", "i"), ("k", "j"),
             ("q", "p"), ("r", "p"), ("r", "s"), ("t", "s")]
    nodes = sorted({n for edge in edges for n in edge} | {"z"})
    on_driver = _components(spark, edges, nodes, driver_edges=100)
    in_spark = _components(spark, edges, nodes, driver_edges=0)
    assert on_driver == in_spark
    assert on_driver == {**dict.fromkeys("abcde", "a"), **dict.fromkeys("hijk", "h"),
                         **dict.fromkeys("pqrst", "p"), "z": "z"}


def test_a_graph_without_edges_leaves_every_node_its_own_component(spark):
    assert _components(spark, [], ["b", "a"], driver_edges=100) == {"a": "a", "b": "b"}


def _ids(spark, rows: list[tuple[str, str, str]]):
    return spark.createDataFrame(rows, "source string, source_customer_id string, identifier string")


def _records(frame) -> set[tuple[str, str]]:
    return {(r["source"], r["source_customer_id"]) for r in frame.collect()}


def test_affected_records_are_the_touched_their_key_sharers_within_the_cap_and_their_clusters(spark):
    from crm_lakehouse.silver.identity import affected_records, carriers, touched_identifiers

    # a1 changes its e-mail from shared@ to new@; b1 still carries shared@; crowded@ is over the cap
    # (2) before and after; c1 and c2 are one cluster through an old link; z1 is a stranger.
    before = _ids(spark, [("a", "1", "email:shared@"), ("b", "1", "email:shared@"), ("a", "1", "email:crowded@"),
                          ("x", "1", "email:crowded@"), ("x", "2", "email:crowded@"), ("c", "1", "phone:+1"),
                          ("z", "1", "phone:+9")])
    after = _ids(spark, [("a", "1", "email:new@"), ("c", "1", "email:new@"), ("b", "1", "email:shared@"),
                         ("a", "1", "email:crowded@"), ("x", "1", "email:crowded@"), ("x", "2", "email:crowded@"),
                         ("c", "1", "phone:+1"), ("z", "1", "phone:+9")])
    identity_before = spark.createDataFrame(
        [("a", "1", "A"), ("b", "1", "A"), ("c", "1", "C"), ("c", "2", "C"), ("x", "1", "X"), ("x", "2", "Y"),
         ("z", "1", "Z")], "source string, source_customer_id string, customer_id string")
    touched = spark.createDataFrame([("a", "1")], "source string, source_customer_id string")

    identifiers = touched_identifiers(after, touched)
    assert {r["identifier"] for r in identifiers.collect()} == {"email:new@", "email:crowded@"}
    carried = carriers(identifiers, ids_before=before, ids_after=after)
    affected = affected_records(touched=touched, carried=carried, identity_before=identity_before, cap=2)
    # b1 shares nothing with a1 after, but was in its cluster; c1 shares new@ (within the cap),
    # and brings its cluster's c2; crowded@ links nobody, so x1 and x2 stay out, as does z1.
    assert _records(affected) == {("a", "1"), ("b", "1"), ("c", "1"), ("c", "2")}
