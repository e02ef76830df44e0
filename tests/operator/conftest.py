"""Operator tier: the real kopf operator process against kmock (an emulated API server)."""

from tests.support.kmock_cluster import kmock_cluster, kmock_cluster_factory  # noqa: F401
