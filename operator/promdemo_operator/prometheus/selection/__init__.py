"""Does a Prometheus select a PromDemo's ServiceMonitor and PrometheusRule?

- `labelselector`: Kubernetes label selectors as prometheus-operator evaluates
  them (nil selects nothing, `{}` everything), and the labels that would make
  one match;
- `prometheus`: a Prometheus object's four selectors against the objects and
  their namespace, with a reason and an actionable fix per Prometheus, and the
  labels for `spec.monitoring.matchPrometheus: auto`.

Plain Python: no kopf, no kubernetes client.
"""

from promdemo_operator.prometheus.selection.labelselector import (
    LabelPlan,
    LabelSelector,
    Requirement,
    SelectorError,
    format_labels,
)
from promdemo_operator.prometheus.selection.prometheus import (
    BLOCKING,
    KINDS,
    NAMESPACE_NAME_LABEL,
    PROMETHEUS_RULE,
    SELECTOR_FIELDS,
    SERVICE_MONITOR,
    AutoLabels,
    Kind,
    MonitoringObject,
    PrometheusError,
    PrometheusSelectors,
    PrometheusVerdict,
    SelectionReport,
    Verdict,
    auto_labels,
    check,
    decide,
    namespace_labels,
)

__all__ = [
    "BLOCKING",
    "KINDS",
    "NAMESPACE_NAME_LABEL",
    "PROMETHEUS_RULE",
    "SELECTOR_FIELDS",
    "SERVICE_MONITOR",
    "AutoLabels",
    "Kind",
    "LabelPlan",
    "LabelSelector",
    "MonitoringObject",
    "PrometheusError",
    "PrometheusSelectors",
    "PrometheusVerdict",
    "Requirement",
    "SelectionReport",
    "SelectorError",
    "Verdict",
    "auto_labels",
    "check",
    "decide",
    "format_labels",
    "namespace_labels",
]
