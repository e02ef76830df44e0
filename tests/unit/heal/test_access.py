"""How the heal loop reaches a pod (heal/access.py): its IP or the API server's proxy."""

from __future__ import annotations

import pytest

from promdemo_operator.heal.access import (
    API_PROXY,
    POD_IP,
    pod_base_url,
    pod_proxy_url,
    resolve_access,
)


def test_resolve_access() -> None:
    assert resolve_access("auto", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == POD_IP
    assert resolve_access("auto", {}) == API_PROXY
    assert resolve_access(None, {"KUBERNETES_SERVICE_HOST": ""}) == API_PROXY
    assert resolve_access("apiProxy", {"KUBERNETES_SERVICE_HOST": "x"}) == API_PROXY
    with pytest.raises(ValueError, match="podAccess"):
        resolve_access("nodePort", {})


def test_urls() -> None:
    assert pod_proxy_url("https://127.0.0.1:6443/", "demo", "shop-a", 8080) == (
        "https://127.0.0.1:6443/api/v1/namespaces/demo/pods/shop-a:8080/proxy"
    )
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip="10.1.2.3") == "http://10.1.2.3:8080"
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip="fd00::1", port=81) == (
        "http://[fd00::1]:81"
    )
    assert pod_base_url(POD_IP, namespace="d", pod="p", pod_ip=None) is None
