"""The plain parts of the kmock harness (no processes)."""

from __future__ import annotations

import pytest

from tests.support.kmock_cluster import _match_selector, _merge_patch, _verb, resource_path

pytestmark = pytest.mark.operator


def test_harness_helpers() -> None:
    assert _verb("GET", None, {"watch": "true"}) == "watch"
    assert _verb("GET", "x", {}) == "get"
    assert _verb("GET", None, {}) == "list"
    assert _verb("DELETE", None, {}) == "deletecollection"
    assert _match_selector("a=b,c", {"a": "b", "c": ""})
    assert not _match_selector("a!=b", {"a": "b"})
    assert _match_selector("!x", {"a": "b"})
    assert _merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {
        "a": {"c": 2},
        "l": [2],
    }
    assert resource_path("v1/pods", "ns", "p", "proxy") == "/api/v1/namespaces/ns/pods/p/proxy"
    assert (
        resource_path("promdemo.dev/v1alpha1/promdemos") == "/apis/promdemo.dev/v1alpha1/promdemos"
    )
