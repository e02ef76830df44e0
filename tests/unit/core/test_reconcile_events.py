"""core/reconcile_events.py: which Events a reconcile posts, called directly."""

from __future__ import annotations

from typing import Any

import pytest

from promdemo_operator.core.reconcile_events import (
    Event,
    child_events,
    failure_event,
    held_by_namesake,
    invalid_spec_event,
    monitoring_event,
    not_owned_event,
    replicas_overridden,
    replicas_set_back_event,
    selection_changed,
    selection_event,
)
from promdemo_operator.core.reconcile_status import condition, monitoring_condition
from tests.support.applied_children import Child, held_by

# -- children ------------------------------------------------------------------------------


def test_a_new_promdemo_gets_one_created_event_naming_its_five_children():
    results = [
        Child("Secret", "shop-reset-token", "created"),
        Child("Deployment", "shop", "created"),
        Child("Service", "shop", "created"),
        Child("ServiceMonitor", "shop", "created"),
        Child("PrometheusRule", "shop", "created"),
    ]
    assert child_events(results, [], "shop") == [
        Event(
            "Normal",
            "Created",
            "Created Secret shop-reset-token, Deployment shop, Service shop, ServiceMonitor"
            " shop, PrometheusRule shop",
        )
    ]


def test_created_updated_and_deleted_in_one_reconcile_in_that_order():
    results = [
        Child("Deployment", "shop", "patched"),
        Child("Service", "shop", "unchanged"),
        Child("PrometheusRule", "shop", "created"),
        Child("Secret", "shop-reset-token", "not_owned"),
    ]
    events = child_events(results, ["ServiceMonitor"], "shop")
    assert events == [
        Event.normal("Created", "Created PrometheusRule shop"),
        Event.normal("Updated", "Updated Deployment shop"),
        Event.normal("Deleted", "Deleted ServiceMonitor shop (switched off in spec.monitoring)"),
    ]


def test_a_reconcile_that_changed_nothing_posts_nothing():
    results = [Child("Deployment", "shop", "unchanged"), Child("Service", "shop", "unchanged")]
    assert child_events(results, [], "shop") == []


# -- replicas set back ---------------------------------------------------------------------


def overridden(**changes: Any) -> int | None:
    given: dict[str, Any] = {
        "deployment_patched": True,
        "before": {"spec": {"replicas": 5}},
        "generation": 3,
        "observed_generation": 3,
        "spec_replicas": 2,
    }
    given.update(changes)
    return replicas_overridden(**given)


def test_a_replicas_count_set_by_another_writer_is_reported_when_set_back():
    assert overridden() == 5
    event = replicas_set_back_event("shop", 5, 2)
    assert (event.type, event.reason) == ("Warning", "ReplicasSetBack")
    assert event.message.startswith(
        "Deployment shop was scaled to 5 outside the PromDemo and set back to spec.replicas=2"
    )
    assert "`kubectl scale promdemo/shop --replicas=N`" in event.message


@pytest.mark.parametrize(
    "changes",
    [
        {"deployment_patched": False},  # nothing was set back
        {"before": None},  # the Deployment was just created
        {"observed_generation": 2},  # the PromDemo's own spec changed: an update
        {"before": {"spec": {"replicas": 2}}},  # the patch was about something else
        {"before": {"spec": {}}},  # no count to speak of
    ],
)
def test_no_replicas_event_for_what_is_not_a_revert(changes: dict[str, Any]):
    assert overridden(**changes) is None


# -- a child in the way --------------------------------------------------------------------


def test_a_child_of_someone_else_gets_a_not_owned_warning():
    child = Child("Service", "shop", "not_owned", {"metadata": {"name": "shop"}})
    event = not_owned_event(child, "shop")
    assert event is not None
    assert (event.type, event.reason) == ("Warning", "NotOwned")
    assert event.message == (
        "Service shop exists and is not controlled by this PromDemo; it is left as it is"
        " (delete it, or rename the PromDemo)"
    )
    other = Child("Service", "shop", "not_owned", held_by("other"))
    assert not_owned_event(other, "shop") is not None
    assert not held_by_namesake(other.object, "shop")


def test_a_child_still_held_by_a_deleted_namesake_is_no_warning():
    child = Child("Deployment", "shop", "not_owned", held_by("shop"))
    assert held_by_namesake(child.object, "shop")
    assert not_owned_event(child, "shop") is None


# -- MonitoringReady -----------------------------------------------------------------------

READY = monitoring_condition({"ServiceMonitor", "PrometheusRule"}, [])
MISSING = monitoring_condition({"ServiceMonitor", "PrometheusRule"}, ["ServiceMonitor"])


def status_with(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"conditions": [dict(c, lastTransitionTime="2026-01-01T00:00:00Z") for c in conditions]}


def test_monitoring_crds_missing_is_a_warning_from_the_first_report_on():
    event = monitoring_event({}, MISSING)
    assert event == Event.warning("MonitoringCRDsMissing", MISSING["message"])
    assert monitoring_event(status_with(READY), MISSING) == event


def test_monitoring_back_is_a_normal_event_and_no_change_is_none():
    assert monitoring_event(status_with(MISSING), READY) == Event.normal(
        "MonitoringObjectsApplied", READY["message"]
    )
    assert monitoring_event({}, READY) is None  # ready from the start: no news
    assert monitoring_event(status_with(READY), READY) is None
    assert monitoring_event(status_with(MISSING), MISSING) is None


# -- PrometheusSelected --------------------------------------------------------------------

SELECTED = condition("PrometheusSelected", True, "Selected", "selected by monitoring/prometheus")
NOT_SELECTED = condition("PrometheusSelected", False, "LabelsMissing", "add release: prometheus")


def test_being_selected_from_the_start_is_no_news_but_becoming_selected_is():
    assert selection_changed(None, SELECTED)
    assert selection_event(None, SELECTED) is None
    assert selection_event(NOT_SELECTED, SELECTED) == Event.normal(
        "PrometheusSelected", SELECTED["message"]
    )


def test_not_selected_is_a_warning_from_the_first_report_and_when_why_changes():
    assert selection_event(None, NOT_SELECTED) == Event.warning(
        "PrometheusNotSelected", NOT_SELECTED["message"]
    )
    assert selection_event(SELECTED, NOT_SELECTED) is not None
    why_changed = dict(NOT_SELECTED, message="add team: shop")
    assert selection_event(NOT_SELECTED, why_changed) == Event.warning(
        "PrometheusNotSelected", "add team: shop"
    )


def test_an_unchanged_or_unknown_selection_posts_nothing():
    assert not selection_changed(NOT_SELECTED, dict(NOT_SELECTED))
    assert selection_event(NOT_SELECTED, dict(NOT_SELECTED)) is None
    assert selection_event(SELECTED, dict(SELECTED)) is None
    unknown = {
        "type": "PrometheusSelected",
        "status": "Unknown",
        "reason": "PrometheusCRDMissing",
        "message": "no prometheus-operator",
    }
    assert selection_changed(SELECTED, unknown)
    assert selection_event(SELECTED, unknown) is None


# -- a failed API call ---------------------------------------------------------------------


def test_only_a_permanent_failure_gets_an_event():
    assert failure_event("403 Forbidden: patch deployments", transient=False) == Event.warning(
        "ReconcileFailed", "403 Forbidden: patch deployments"
    )
    assert failure_event("503 Service Unavailable", transient=True) is None


# -- an invalid spec -----------------------------------------------------------------------

SPEC_VALID = condition("SpecValid", True, "SpecAccepted", "the spec is valid")
BAD_REPLICAS = "spec.replicas: 51 must be between 0 and 50"


def test_an_invalid_spec_is_a_warning_once_per_problem():
    event = invalid_spec_event({}, BAD_REPLICAS)
    assert event == Event.warning("InvalidSpec", BAD_REPLICAS)
    assert invalid_spec_event(status_with(SPEC_VALID), BAD_REPLICAS) == event
    invalid = condition("SpecValid", False, "InvalidSpec", BAD_REPLICAS)
    assert invalid_spec_event(status_with(invalid), BAD_REPLICAS) is None  # already said
    other = "spec.image: must be an image reference of 1 to 512 characters without spaces"
    assert invalid_spec_event(status_with(invalid), other) == Event.warning("InvalidSpec", other)
