"""Each fault-test module gets a private cluster, torn down whatever happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import PrivateCluster


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(tmp_path_factory.mktemp("kafka-fault"))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def healthy_cluster(private_cluster: PrivateCluster) -> PrivateCluster:
    """The private cluster with every node running again (an earlier test may have killed one)."""
    private_cluster.up()
    private_cluster.wait_fully_replicated()
    return private_cluster
