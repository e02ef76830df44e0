"""What the operator keeps of each watched child (core/watched.py): a compact record."""

from __future__ import annotations

import base64

from promdemo_operator.core.watched import child_record, controller_promdemo

UID = "6a1e2c3d-0000-4000-8000-000000000002"


def test_child_records_know_their_owner_and_drop_managed_fields() -> None:
    ref = {"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "name": "shop",
           "uid": UID, "controller": True}  # fmt: skip
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "shop-reset-token", "namespace": "demo", "resourceVersion": "7",
            "ownerReferences": [ref], "managedFields": [{"manager": "x" * 1000}],
        },
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }  # fmt: skip
    record = child_record("Secret", secret)
    assert (record.owner, record.owner_uid, record.resource_version) == ("shop", UID, "7")
    assert record.secret_value("token") == "s3cret"
    assert "managedFields" not in record.object()["metadata"]
    assert len(record.packed) < 400
    assert (
        controller_promdemo({"metadata": {"ownerReferences": [{**ref, "controller": False}]}})
        is None
    )
    assert (
        controller_promdemo({"metadata": {"ownerReferences": [{**ref, "kind": "Other"}]}}) is None
    )
