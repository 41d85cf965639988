"""`NodeInfo.selected_by`: the nodes APIs' `{node_id}` filter over elserve's one node, as
`DiscoveryNodes.resolveNodes` resolves it."""

from __future__ import annotations

import pytest

from elserve.api.node import NodeInfo
from elserve.errors import IllegalArgumentException

NODE = NodeInfo(
    node_id="n0deId",
    name="box-1",
    cluster_name="elserve",
    cluster_uuid="c",
    ephemeral_id="e",
    transport_address="127.0.0.1:9200",
    allocated_processors=4,
    machine_memory=8 << 30,
    ml_memory_limit=4 << 30,
)


@pytest.mark.parametrize(
    ("node_ids", "selected"),
    [
        (None, True),
        ("", True),
        ("_all", True),
        ("_local", True),
        ("n0deId", True),
        ("box-1", True),
        ("box-*", True),
        ("*", True),
        ("127.0.0.1", True),
        ("other", False),
        ("_master", False),  # the node holds the ml role only
        ("ml:true", True),
        ("ml:false", False),
        ("_all,ml:false", False),  # filters apply in order: the role removes the node again
        ("master:true", False),
        ("data:true", False),
        ("ingest:false", False),
        ("ml.allocated_processors:4", True),
        ("ml.alloc*:*", True),
        ("ml.allocated_processors:8", False),
        ("coordinating_only:true", False),
        ("other,box-1", True),
    ],
)
def test_node_filter(node_ids: str | None, selected: bool) -> None:
    assert NODE.selected_by(node_ids) is selected


def test_a_role_filter_value_must_be_a_boolean() -> None:
    with pytest.raises(IllegalArgumentException, match=r"Failed to parse value \[maybe\]"):
        NODE.selected_by("ml:maybe")
