"""Names of the PromDemo API and of the objects the operator owns.

One place for what the CRD, the renderer, the kopf handlers and the CLI must
agree on: the group/version/plural, the standard labels every child carries,
the pod selector and the reset-token Secret's name.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "API_VERSION",
    "APP_NAME",
    "GROUP",
    "KIND",
    "MANAGED_BY",
    "MONITORING_API_VERSION",
    "MONITORING_GROUP",
    "MONITORING_VERSION",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
    "label_selector",
    "labels_for",
    "secret_name",
    "selector_for",
    "selector_string",
]

GROUP = "promdemo.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PromDemo"
PLURAL = "promdemos"
SHORT_NAME = "pd"

MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_VERSION = "v1"
MONITORING_API_VERSION = f"{MONITORING_GROUP}/{MONITORING_VERSION}"

APP_NAME = "promdemo"
MANAGED_BY = "promdemo-operator"


def labels_for(name: str) -> dict[str, str]:
    """The labels every child of PromDemo `name` carries."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_for(name: str) -> dict[str, str]:
    """The pod selector of PromDemo `name` (the first two of `labels_for`)."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
    }


def label_selector(labels: Mapping[str, str]) -> str:
    """`k=v,k2=v2`: equality matchers as a `labelSelector` query or `status.selector`."""
    return ",".join(f"{k}={v}" for k, v in labels.items())


def selector_string(name: str) -> str:
    """The pod selector of PromDemo `name` as a string: what `status.selector` holds."""
    return label_selector(selector_for(name))


def secret_name(name: str) -> str:
    """The name of the reset-token Secret of PromDemo `name`."""
    return f"{name}-reset-token"
