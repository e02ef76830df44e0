"""What kopf diffs at every event of every watched object: the generation only (the
operator has no change-detecting handler), so a Deployment's or Pod's status event
is not deep-copied with its managedFields just to be thrown away."""

from __future__ import annotations

import kopf

from promdemo_operator.runtime.handlers.watches import GenerationEssence


def body(generation: int, ready: int) -> kopf.Body:
    return kopf.Body({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "generation": generation, "managedFields": [{"x": 1}] * 50},
        "spec": {"replicas": 1}, "status": {"readyReplicas": ready},
    })  # fmt: skip


def test_the_essence_changes_with_the_generation_not_with_the_status() -> None:
    storage = GenerationEssence()
    assert storage.build(body=body(1, 0)) == storage.build(body=body(1, 1))
    assert storage.build(body=body(1, 0)) != storage.build(body=body(2, 0))
    assert storage.build(body=body(3, 1)) == {"metadata": {"generation": 3}}


def test_a_handler_asking_for_fields_gets_kopfs_own_essence() -> None:
    essence = GenerationEssence().build(body=body(1, 1), extra_fields=["status.readyReplicas"])
    assert essence["spec"] == {"replicas": 1}
    assert essence["status"] == {"readyReplicas": 1}
