"""Identity resolution: which source customer records belong to one person.

Two records are linked when they share a match key in any version of either record (a person
who moved keeps their old links): a normalized e-mail, an E.164 phone, or the full name together
with the birth date (CDP-style composite key; it links the records one person keeps under a work
address and without a phone). ``silver.identity.match_keys`` chooses which keys link. A person is
a connected component of that graph (see :func:`connected_components`).

Giant clusters are the known failure of this method: one placeholder e-mail shared by thousands
of records merges thousands of strangers. So an identifier never links when it is on the
blocklist, or when more than ``max_records_per_identifier`` distinct records carry it (the
cardinality cap CDP identity graphs use).

The golden ``customer_id`` is a function of the cluster: the hash of its anchor record, the
record seen first (earliest event time, then source and source id). It does not change when a
newer record joins. When a record links two clusters, the older anchor survives and the other id
is retired, with a redirect in ``silver.customer_id_redirects``. A run over days 0..N and
day-by-day runs therefore give the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.config.settings import MATCH_KEYS

RECORD = ["source", "source_customer_id"]
MAX_ITERATIONS = 64
# Linking edges up to which a batch's clusters are found on the driver (see connected_components).
DRIVER_EDGES = 100_000


class IdentityGraphError(RuntimeError):
    """Label propagation did not converge: the identity graph has a chain longer than expected."""


def golden_id(source: Column, source_customer_id: Column) -> Column:
    """The customer id a cluster gets from its anchor record: stable, opaque, free of PII."""
    return F.concat(F.lit("C"), F.substring(F.sha2(F.concat_ws("|", source, source_customer_id), 256), 1, 15))


def record_identifiers(history: DataFrame, *, blocked_emails: Iterable[str], blocked_phones: Iterable[str],
                       match_keys: Iterable[str] = MATCH_KEYS, shared_ids: dict[str, str] | None = None) -> DataFrame:
    """(source, source_customer_id, identifier) for every match key any version carried.

    Blocked values are left out: they never link. Identifiers read ``email:...``, ``phone:+...``
    and ``name_birth_date:<name, case and spaces folded>|<yyyy-mm-dd>``; records of sources that
    share their customer numbers (``shared_ids``: source -> group) also carry
    ``shared_id:<group>|<number>``, a hard link declared in the sources' YAML.
    """
    keys = {
        "email": F.when(~F.col("email").isin(*sorted(blocked_emails) or [""]), F.concat(F.lit("email:"), F.col("email"))),
        "phone": F.when(~F.col("phone").isin(*sorted(blocked_phones) or [""]), F.concat(F.lit("phone:"), F.col("phone"))),
        "name_birth_date": F.concat(F.lit("name_birth_date:"), F.lower(F.regexp_replace("full_name", r"\s+", "")),
                                    F.lit("|"), F.col("birth_date").cast("string")),
    }
    chosen = [keys[k] for k in match_keys]
    if shared_ids:
        group = F.create_map(*[F.lit(v) for source, name in sorted(shared_ids.items()) for v in (source, name)])
        chosen.append(F.when(F.element_at(group, F.col("source")).isNotNull(), F.concat(
            F.lit("shared_id:"), F.element_at(group, F.col("source")), F.lit("|"), F.col("source_customer_id"))))
    return history.select(*RECORD, F.explode(F.array(*chosen)).alias("identifier")) \
        .where(F.col("identifier").isNotNull()).distinct()


def identifier_counts(identifiers: DataFrame) -> DataFrame:
    """(identifier, records): how many distinct source records carry each identifier."""
    return identifiers.groupBy("identifier").agg(F.count(F.lit(1)).alias("records"))


def touched_identifiers(ids_after: DataFrame, touched: DataFrame) -> DataFrame:
    """(identifier): what the touched records carry after the batch."""
    return ids_after.join(touched, RECORD, "left_semi").select("identifier").distinct()


def carriers(identifiers: DataFrame, *, ids_before: DataFrame, ids_after: DataFrame) -> DataFrame:
    """(source, source_customer_id, identifier, after): every record carrying one of
    ``identifiers`` before (``after`` false) or after the batch (true). A batch reads the graph
    through these few identifiers only, so its cost follows its records, not the graph's size."""
    return ids_before.join(identifiers, "identifier", "left_semi").withColumn("after", F.lit(False)) \
        .unionByName(ids_after.join(identifiers, "identifier", "left_semi").withColumn("after", F.lit(True)))


def affected_records(*, touched: DataFrame, carried: DataFrame, identity_before: DataFrame, cap: int) -> DataFrame:
    """The records whose cluster may change: the touched ones, every record sharing an identifier
    that links before or after this batch with them, and the whole former clusters of all these.

    ``carried`` is :func:`carriers` of the touched records' identifiers. Identifiers only ever
    gain records, so a cluster outside this set keeps exactly its edges.
    """
    counts = carried.groupBy("identifier").agg(F.count(F.when(~F.col("after"), 1)).alias("n_before"),
                                               F.count(F.when(F.col("after"), 1)).alias("n_after"))
    relevant = counts.where((F.col("n_before") <= cap) | (F.col("n_after") <= cap)).select("identifier")
    # A probabilistic link is new with the batch: its other record carries it only after.
    neighbours = carried.join(relevant, "identifier", "left_semi").select(*RECORD)
    seeds = touched.select(*RECORD).unionByName(neighbours).distinct()
    clusters = identity_before.join(seeds, RECORD, "left_semi").select("customer_id").distinct()
    members = identity_before.join(clusters, "customer_id", "left_semi").select(*RECORD)
    return seeds.unionByName(members).distinct()


def linking_edges(ids_after: DataFrame, records: DataFrame, cap: int) -> DataFrame:
    """The links among ``records``: each record to the smallest record of every identifier it
    shares within the cap (a star per identifier keeps the graph's diameter small), as
    (source_l, source_customer_id_l, source_r, source_customer_id_r, linked_by) with the smaller
    record left and ``linked_by`` the identifier's kind (email, phone, ..., link for the model's)."""
    carried = ids_after.join(records, RECORD, "left_semi")
    sharing = ids_after.join(carried.select("identifier").distinct(), "identifier", "left_semi")
    linking = identifier_counts(sharing).where(F.col("records") <= cap).select("identifier")
    keyed = carried.join(linking, "identifier", "left_semi")
    hubs = keyed.groupBy("identifier").agg(F.min(F.struct(*RECORD)).alias("hub"))
    return keyed.join(hubs, "identifier").where(F.struct(*RECORD) != F.col("hub")).select(
        F.col("hub.source").alias("source_l"), F.col("hub.source_customer_id").alias("source_customer_id_l"),
        F.col("source").alias("source_r"), F.col("source_customer_id").alias("source_customer_id_r"),
        F.substring_index("identifier", ":", 1).alias("linked_by")).distinct()


def as_nodes(links: DataFrame) -> DataFrame:
    """(node, neighbour) from :func:`linking_edges`, for :func:`connected_components`."""
    return links.select(F.concat_ws("|", "source_l", "source_customer_id_l").alias("node"),
                        F.concat_ws("|", "source_r", "source_customer_id_r").alias("neighbour"))


def connected_components(nodes: DataFrame, edges: DataFrame, *, driver_edges: int = DRIVER_EDGES) -> DataFrame:
    """(node, component): each node labelled with the smallest node reachable from it.

    A daily batch's graph is the few clusters its records touch: up to ``driver_edges`` edges it
    is collected and solved on the driver (one job), since every round of the distributed
    method costs a plan analysis and two jobs (~1.5 s on two cores) however few rows it moves.
    Larger graphs (a first load) take min-label propagation in Spark: every round a node takes
    the smallest label among itself and its neighbours, until no label changes. Each round is
    checkpointed so the plan stays short, and the convergence test reads only that checkpoint.
    """
    pairs = edges.select("node", "neighbour").limit(driver_edges + 1).collect()
    if len(pairs) <= driver_edges:
        labels = smallest_reachable((row["node"], row["neighbour"]) for row in pairs)
        solved = nodes.sparkSession.createDataFrame(sorted(labels.items()), "node string, component string")
        return nodes.select("node").distinct().join(solved, "node", "left") \
            .select("node", F.coalesce(F.col("component"), F.col("node")).alias("component"))
    undirected = edges.select("node", "neighbour").unionByName(
        edges.select(F.col("neighbour").alias("node"), F.col("node").alias("neighbour"))).distinct().localCheckpoint()
    labels = nodes.select("node", F.col("node").alias("component")).distinct().localCheckpoint()
    for _ in range(MAX_ITERATIONS):
        offered = undirected.join(labels.withColumnRenamed("node", "neighbour"), "neighbour") \
            .groupBy("node").agg(F.min("component").alias("offered"))
        updated = labels.join(offered, "node", "left").select(
            "node", F.least("component", F.coalesce("offered", "component")).alias("component"),
            F.coalesce(F.col("offered") < F.col("component"), F.lit(False)).alias("changed")).localCheckpoint()
        labels = updated.drop("changed")
        if updated.where("changed").limit(1).count() == 0:
            return labels
    raise IdentityGraphError(f"identity clusters did not settle after {MAX_ITERATIONS} rounds")


def smallest_reachable(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find over the edges, each set rooted at its smallest node: node -> that node."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        top = node
        while parent.setdefault(top, top) != top:
            top = parent[top]
        while node != top:  # path compression keeps later look-ups short
            parent[node], node = top, parent[node]
        return top

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: root(node) for node in list(parent)}


def assign_customer_ids(records: DataFrame, components: DataFrame) -> DataFrame:
    """(source, source_customer_id, customer_id) from components and each record's ``first_seen_at``.

    ``records`` has one row per record with ``first_seen_at``; the anchor of a component is its
    record seen first (ties: source, then source id).
    """
    keyed = records.withColumn("node", F.concat_ws("|", *RECORD)) \
        .join(components, "node", "left").withColumn("component", F.coalesce(F.col("component"), F.col("node")))
    anchors = keyed.groupBy("component").agg(F.min(F.struct(
        F.coalesce(F.col("first_seen_at"), F.lit("9999-12-31").cast("timestamp")).alias("at"),
        F.col("source").alias("s"), F.col("source_customer_id").alias("i"))).alias("anchor"))
    return keyed.join(anchors, "component").select(
        *RECORD, golden_id(F.col("anchor.s"), F.col("anchor.i")).alias("customer_id"))
