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
