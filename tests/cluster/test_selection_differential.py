"""promdemo's selection against the real prometheus-operator: a differential test.

`selection/` transcribes prometheus-operator's rules (which ServiceMonitors and
PrometheusRules a Prometheus picks up). Here the real prometheus-operator
(built from its Go module, its upstream CRDs applied) runs against a real
control plane of its own, and decides every case; promdemo's three readings of
the same objects must agree with it:

- `selection.decide`, per Prometheus and object (what `check-selection` prints
  per Prometheus and what `PrometheusSelected` summarizes);
- `PrometheusSelected`, as promstatus computes it from the live objects the API
  server returns (`prometheus_record`, `monitoring_objects`, `select`,
  `selected_condition`; the kopf daemon around it is not run here);
- `promdemo check-selection` (the command a user runs), per PromDemo: exit 0
  exactly when the real operator gave one Prometheus both the ServiceMonitor's
  scrape job and the PrometheusRule's rule file.

The cases: every Prometheus (the objects kube-prometheus-stack, with and without
its `*SelectorNilUsesHelmValues: false`, and kube-prometheus create, hand-made
edge cases, and RANDOM_PROMETHEUSES seeded random ones: nil vs `{}` selectors,
`matchLabels`, every `matchExpressions` operator, namespace selectors, Prometheus
objects in the PromDemos' own namespaces) against the ServiceMonitor and the
PrometheusRule of every PromDemo (labelled and unlabelled, in labelled and
unlabelled namespaces). What the real operator selected is read from what it
wrote (tests/support/prometheus_operator.py): the `serviceMonitor/<ns>/<name>/<i>`
jobs of the `prometheus-<name>` Secret's configuration, and the keys
`<ns>-<name>-<uid>.yaml` of the `prometheus-<name>-rulefiles-<i>` ConfigMaps.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.core.render import render_children
from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.selection import (
    KINDS,
    MonitoringObject,
    PrometheusSelectors,
    decide,
    namespace_labels,
)
from promdemo_operator.prometheus.status import (
    monitoring_objects,
    prometheus_record,
    select,
    selected_condition,
)
from tests.support.controlplane import ControlPlane, require_controlplane
from tests.support.prometheus_operator import (
    PrometheusOperator,
    generated_jobs,
    generated_rule_files,
    require_prometheus_operator,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "prometheus"
SEED = 20261207
RANDOM_PROMETHEUSES = 30
MIN_CASES = 200
#: Bounds of the waits for the real operator (seconds): generous for a busy 2-core machine.
SETTLE_TIMEOUT = 240.0

# --------------------------------------------------------------------------- the cases

#: namespace -> its labels (besides kubernetes.io/metadata.name, which the API server sets)
NAMESPACES: dict[str, dict[str, str]] = {
    "monitoring": {},
    "sel-prod": {"team": "shop", "env": "prod"},
    "sel-dev": {"team": "shop", "env": "dev"},
    "sel-other": {"team": "other", "monitoring": "on"},
    "sel-bare": {},
}

#: (namespace, name, spec.monitoring.labels) of each PromDemo
PROMDEMOS: list[tuple[str, str, dict[str, str]]] = [
    ("sel-prod", "plain", {}),
    ("sel-prod", "rel", {"release": "prometheus"}),
    ("sel-prod", "kps", {"release": "kps", "tier": "gold"}),
    ("sel-dev", "plain", {}),
    ("sel-dev", "rel", {"release": "prometheus", "tier": "silver"}),
    ("sel-other", "team", {"team": "shop"}),
    ("sel-other", "rel", {"release": "prometheus"}),
    ("sel-bare", "plain", {}),
    ("sel-bare", "tier", {"tier": "gold"}),
    ("monitoring", "rel", {"release": "prometheus"}),
    ("monitoring", "plain", {}),
]

LABEL_VALUES = {
    "release": ["prometheus", "kps"],
    "tier": ["gold", "silver"],
    "team": ["shop", "other"],
    "app.kubernetes.io/managed-by": ["promdemo-operator", "helm"],
}
NAMESPACE_LABEL_VALUES = {
    "team": ["shop", "other"],
    "env": ["prod", "dev"],
    "monitoring": ["on"],
    "kubernetes.io/metadata.name": ["sel-prod", "sel-bare", "monitoring"],
}


def _selector(rng: random.Random, vocabulary: dict[str, list[str]]) -> dict[str, Any] | None:
    """A random label selector: nil, {}, matchLabels, matchExpressions, or both."""
    shape = rng.choice(["nil", "all", "labels", "expressions", "both", "expressions"])
    if shape == "nil":
        return None
    if shape == "all":
        return {}
    out: dict[str, Any] = {}
    keys = list(vocabulary)
    if shape in ("labels", "both"):
        key = rng.choice(keys)
        out["matchLabels"] = {key: rng.choice(vocabulary[key])}
    if shape in ("expressions", "both"):
        expressions = []
        for key in rng.sample(keys, rng.choice([1, 1, 2])):
            operator = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
            expression: dict[str, Any] = {"key": key, "operator": operator}
            if operator in ("In", "NotIn"):
                values = vocabulary[key]
                expression["values"] = rng.sample(values, rng.randint(1, len(values)))
            expressions.append(expression)
        out["matchExpressions"] = expressions
    return out


def _prometheus(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


def _fixture(path: Path, name: str) -> dict[str, Any]:
    """A Prometheus of tests/fixtures/prometheus: its selectors only, renamed (one namespace)."""
    (obj,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    fields = ("serviceMonitorSelector", "serviceMonitorNamespaceSelector")
    fields += ("ruleSelector", "ruleNamespaceSelector", "podMonitorSelector")
    spec = {k: obj["spec"][k] for k in fields if k in obj["spec"]}
    return _prometheus(obj["metadata"]["namespace"], name, spec)


def prometheus_cases() -> list[dict[str, Any]]:
    """Every Prometheus of the test: the charts' objects, edge cases, seeded random ones."""
    everything = {"matchLabels": {}}
    cases = [
        _fixture(FIXTURES / "kube-prometheus-stack.yaml", "kps-default"),
        _fixture(FIXTURES / "kube-prometheus-stack-select-all.yaml", "kps-select-all"),
        _fixture(FIXTURES / "kube-prometheus.yaml", "kube-prometheus"),
        # nil selectors select nothing; with a podMonitorSelector the config is managed
        _prometheus("monitoring", "all-nil", {}),
        _prometheus("monitoring", "sm-nil", {"podMonitorSelector": {}, "ruleSelector": {}}),
        # {} object selectors, nil namespace selectors: the Prometheus's own namespace only
        _prometheus("monitoring", "own-ns", {"serviceMonitorSelector": {}, "ruleSelector": {}}),
        _prometheus("sel-prod", "own-ns", {"serviceMonitorSelector": {}, "ruleSelector": {}}),
        _prometheus(
            "sel-bare",
            "own-ns-rel",
            {
                "serviceMonitorSelector": {"matchLabels": {"release": "prometheus"}},
                "ruleSelector": {"matchLabels": {"release": "prometheus"}},
            },
        ),
        # `matchLabels: {}` is `{}`
        _prometheus(
            "monitoring",
            "empty-match-labels",
            {
                "serviceMonitorSelector": everything,
                "serviceMonitorNamespaceSelector": everything,
                "ruleSelector": everything,
                "ruleNamespaceSelector": everything,
            },
        ),
        # namespaces by name and by label, every operator once
        _prometheus(
            "monitoring",
            "ns-by-name",
            {
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": ["sel-prod", "sel-other"],
                        }
                    ]
                },
                "ruleSelector": {},
                "ruleNamespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["sel-prod"],
                        }
                    ]
                },
            },
        ),
        _prometheus(
            "monitoring",
            "ns-exists",
            {
                "serviceMonitorSelector": {
                    "matchExpressions": [{"key": "release", "operator": "Exists"}]
                },
                "serviceMonitorNamespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "Exists"}]
                },
                "ruleSelector": {
                    "matchExpressions": [{"key": "release", "operator": "DoesNotExist"}]
                },
                "ruleNamespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]
                },
            },
        ),
        _prometheus(
            "monitoring",
            "not-in",
            {
                "serviceMonitorSelector": {
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]
                },
                "serviceMonitorNamespaceSelector": {"matchLabels": {"team": "shop"}},
                "ruleSelector": {
                    "matchLabels": {"release": "prometheus"},
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["silver", "gold"]}
                    ],
                },
                "ruleNamespaceSelector": {"matchLabels": {"env": "dev"}},
            },
        ),
        # an invalid selector (In without values): the operator cannot convert it
        _prometheus(
            "monitoring",
            "invalid-sm",
            {
                "serviceMonitorSelector": {
                    "matchExpressions": [{"key": "release", "operator": "In", "values": []}]
                },
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {},
                "ruleNamespaceSelector": {},
            },
        ),
        _prometheus(
            "monitoring",
            "invalid-rule",
            {
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn"}]},
                "ruleNamespaceSelector": {},
            },
        ),
        # an invalid selector of a kind promdemo does not create
        _prometheus(
            "monitoring",
            "invalid-podmonitor",
            {
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "podMonitorSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
                "ruleSelector": {},
                "ruleNamespaceSelector": {},
            },
        ),
        _prometheus(
            "monitoring",
            "invalid-sm-ns",
            {
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {
                    "matchExpressions": [
                        {"key": "team", "operator": "DoesNotExist", "values": ["shop"]}
                    ]
                },
                "ruleSelector": {},
                "ruleNamespaceSelector": {},
            },
        ),
        _prometheus(
            "monitoring",
            "invalid-rule-ns",
            {
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {},
                "ruleNamespaceSelector": {
                    "matchExpressions": [{"key": "team", "operator": "Exists", "values": ["shop"]}]
                },
            },
        ),
    ]
    rng = random.Random(SEED)
    for i in range(RANDOM_PROMETHEUSES):
        namespace = rng.choice(["monitoring", "monitoring", "sel-prod", "sel-other"])
        spec = {
            "serviceMonitorSelector": _selector(rng, LABEL_VALUES),
            "serviceMonitorNamespaceSelector": _selector(rng, NAMESPACE_LABEL_VALUES),
            "ruleSelector": _selector(rng, LABEL_VALUES),
            "ruleNamespaceSelector": _selector(rng, NAMESPACE_LABEL_VALUES),
        }
        cases.append(_prometheus(namespace, f"random-{i:02d}", spec))
    return cases


def promdemo_manifest(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"monitoring": {"labels": labels}} if labels else {},
    }


def monitoring_children(namespace: str, name: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The ServiceMonitor and PrometheusRule the operator renders for that PromDemo."""
    spec = parse_spec(promdemo_manifest(namespace, name, labels)["spec"])
    children = render_children(name, namespace, spec, token="unused")
    return [c for c in children if c["kind"] in KINDS]


# --------------------------------------------------------------------------- the real operator


@dataclass
class Outcome:
    """What the real operator decided, and the live objects it decided on."""

    prometheuses: list[dict[str, Any]]  # as the API server returns them
    monitored: list[dict[str, Any]]  # the ServiceMonitors and PrometheusRules, live
    namespaces: dict[str, dict[str, str]]  # live labels
    #: (prometheus ns/name, kind, object ns/name) -> selected by the real operator
    real: dict[tuple[str, str, str], bool]
    settle_seconds: float
    log: str
    cp: ControlPlane  # still running while the module's tests run


def _kubectl_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def _apply(cp: ControlPlane, objects: list[dict[str, Any]]) -> None:
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects, sort_keys=False))


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def _read_decisions(
    cp: ControlPlane, prometheuses: list[dict[str, Any]], monitored: list[dict[str, Any]]
) -> dict[tuple[str, str, str], bool]:
    """What the operator wrote, read back: (prometheus, kind, object) -> selected."""
    jobs_of, rules_of = generated_jobs(cp), generated_rule_files(cp)
    decisions = {}
    for prom in prometheuses:
        pkey = _key(prom)
        jobs = jobs_of.get(pkey, set())  # no configuration: no ServiceMonitor scraped
        rules = rules_of.get(pkey, set())
        for obj in monitored:
            ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            if obj["kind"] == "ServiceMonitor":
                hit = any(j.startswith(f"serviceMonitor/{ns}/{name}/") for j in jobs)
            else:
                hit = f"{ns}-{name}-{obj['metadata']['uid']}.yaml" in rules
            decisions[(pkey, obj["kind"], _key(obj))] = hit
    return decisions


def _settled(cp: ControlPlane, prometheuses: list[dict[str, Any]]) -> bool:
    """Every Prometheus has been reconciled at its current generation."""
    live = {_key(p): p for p in _kubectl_json(cp, "prometheus", "-A")["items"]}
    for prom in prometheuses:
        obj = live.get(_key(prom))
        if obj is None:
            return False
        generation = obj["metadata"].get("generation")
        conditions = (obj.get("status") or {}).get("conditions") or []
        if not any(
            c.get("type") == "Reconciled" and c.get("observedGeneration") == generation
            for c in conditions
        ):
            return False
    return True


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    require_controlplane()
    require_prometheus_operator()
    prometheuses = prometheus_cases()
    with (
        ControlPlane(workdir=tmp_path_factory.mktemp("cp-selection")) as cp,
        PrometheusOperator(cp) as po,
    ):
        _apply(
            cp,
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels} if labels else {"name": ns},
                }
                for ns, labels in NAMESPACES.items()
            ],
        )
        children = [c for ns, n, labels in PROMDEMOS for c in monitoring_children(ns, n, labels)]
        _apply(cp, children)
        started = time.monotonic()
        _apply(cp, prometheuses)
        deadline = started + SETTLE_TIMEOUT
        while not _settled(cp, prometheuses):
            assert time.monotonic() < deadline, (
                f"prometheus-operator did not reconcile every Prometheus in {SETTLE_TIMEOUT:g}s"
                f"\n{po.log()[-4000:]}"
            )
            time.sleep(1)
        live_monitored = [
            *_kubectl_json(cp, "servicemonitors", "-A")["items"],
            *_kubectl_json(cp, "prometheusrules", "-A")["items"],
        ]
        # the same answer twice, 5 s apart: nothing left to reconcile
        previous = _read_decisions(cp, prometheuses, live_monitored)
        while True:
            time.sleep(5)
            current = _read_decisions(cp, prometheuses, live_monitored)
            if current == previous:
                break
            assert time.monotonic() < deadline, "prometheus-operator's output keeps changing"
            previous = current
        settle = time.monotonic() - started
        live_ns = {
            ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {})
            for ns in _kubectl_json(cp, "namespaces")["items"]
        }
        yield Outcome(
            prometheuses=[
                p
                for p in _kubectl_json(cp, "prometheus", "-A")["items"]
                if _key(p) in {_key(c) for c in prometheuses}
            ],
            monitored=live_monitored,
            namespaces=live_ns,
            real=current,
            settle_seconds=settle,
            log=po.log(),
            cp=cp,
        )


# --------------------------------------------------------------------------- the tests


def test_the_cases_cover_the_selection_rules() -> None:
    """At least MIN_CASES decisions, and every selector shape among them."""
    proms = prometheus_cases()
    objects = 2 * len(PROMDEMOS)
    assert len(proms) * objects >= MIN_CASES
    text = json.dumps([p["spec"] for p in proms])
    for operator in ("In", "NotIn", "Exists", "DoesNotExist"):
        assert f'"operator": "{operator}"' in text, operator
    assert '"matchLabels": {"' in text
    # nil and {} selectors both occur, for objects and for namespaces
    for field in ("serviceMonitorSelector", "ruleNamespaceSelector"):
        assert any(field not in p["spec"] for p in proms)
        assert any(p["spec"].get(field) == {} for p in proms)


def _ours(outcome: Outcome) -> dict[tuple[str, str, str], bool]:
    prometheuses = [PrometheusSelectors.from_object(p) for p in outcome.prometheuses]
    decisions = {}
    for obj in outcome.monitored:
        mobj = MonitoringObject.from_object(obj)
        labels = namespace_labels(mobj.namespace, outcome.namespaces.get(mobj.namespace))
        for prom in prometheuses:
            verdict = decide(prom, mobj, labels)
            decisions[(prom.key, mobj.kind.kind, mobj.key)] = verdict.selected
    return decisions


def _disagreements(real: dict[Any, bool], ours: dict[Any, bool]) -> list[str]:
    assert real.keys() == ours.keys()
    return [
        f"{p} {kind} {obj}: prometheus-operator {'selects' if real[k] else 'does not select'},"
        f" promdemo says {'selected' if ours[k] else 'not selected'}"
        for k in sorted(real)
        for p, kind, obj in [k]
        if real[k] != ours[k]
    ]


def test_selection_agrees_with_the_real_operator_on_every_case(outcome: Outcome) -> None:
    ours = _ours(outcome)
    wrong = _disagreements(outcome.real, ours)
    selected = sum(outcome.real.values())
    print(
        f"\n{len(outcome.real)} cases ({len(outcome.prometheuses)} Prometheus x "
        f"{len(outcome.monitored)} objects), {selected} selected by prometheus-operator, "
        f"{len(wrong)} disagreements; settled in {outcome.settle_seconds:.1f}s"
    )
    assert len(outcome.real) >= MIN_CASES
    assert 0 < selected < len(outcome.real), "the cases must go both ways"
    assert wrong == [], "\n".join(wrong)


def _real_verdict(outcome: Outcome, namespace: str, name: str) -> bool:
    """The real operator gave one Prometheus both objects of this PromDemo."""
    return any(
        outcome.real[(_key(p), "ServiceMonitor", f"{namespace}/{name}")]
        and outcome.real[(_key(p), "PrometheusRule", f"{namespace}/{name}")]
        for p in outcome.prometheuses
    )


@pytest.mark.parametrize(("namespace", "name", "labels"), PROMDEMOS, ids=lambda v: str(v))
def test_prometheus_selected_condition_agrees(
    outcome: Outcome, namespace: str, name: str, labels: dict[str, str]
) -> None:
    """PrometheusSelected from the live objects, as the operator's observe loop computes it."""
    spec = parse_spec(promdemo_manifest(namespace, name, labels)["spec"])
    live = {
        o["kind"]: o
        for o in outcome.monitored
        if o["metadata"]["namespace"] == namespace and o["metadata"]["name"] == name
    }
    report = select(
        [prometheus_record(p) for p in outcome.prometheuses],
        monitoring_objects(name, namespace, spec, live),
        outcome.namespaces,
    )
    cond = selected_condition(
        wanted=True, monitoring_served=True, prometheus_served=True, report=report
    )
    expected = _real_verdict(outcome, namespace, name)
    assert (cond["status"] == "True") == expected, cond


def test_check_selection_command_agrees(outcome: Outcome, tmp_path: Path) -> None:
    """`promdemo check-selection` per PromDemo, with the cluster's Prometheus and Namespaces."""
    objects = [
        *outcome.prometheuses,
        *[
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
            for ns, labels in outcome.namespaces.items()
        ],
    ]
    prometheus_file = tmp_path / "prometheus.yaml"
    prometheus_file.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    promdemo = str(Path(sys.executable).parent / "promdemo")
    wrong = []
    for namespace, name, labels in PROMDEMOS:
        manifest = tmp_path / f"{namespace}-{name}.yaml"
        manifest.write_text(yaml.safe_dump(promdemo_manifest(namespace, name, labels)))
        done = subprocess.run(
            [
                promdemo,
                "check-selection",
                "-f",
                str(manifest),
                "--prometheus",
                str(prometheus_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode in (0, 1), done.stderr
        expected = 0 if _real_verdict(outcome, namespace, name) else 1
        if done.returncode != expected:
            wrong.append(
                f"{namespace}/{name}: exit {done.returncode}, expected {expected}\n{done.stdout}"
            )
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("sample", ["minimal.yaml", "full.yaml"])
def test_the_rendered_objects_are_valid_against_the_upstream_crds(
    outcome: Outcome, sample: str
) -> None:
    """The samples' ServiceMonitor and PrometheusRule pass the API server's strict field
    validation against prometheus-operator's own CRDs (a server-side dry run)."""
    manifest = yaml.safe_load((ROOT / "manifests" / "samples" / sample).read_text())
    name = manifest["metadata"]["name"]
    spec = parse_spec(manifest.get("spec"))
    children = render_children(name, "sel-bare", spec, token="unused")
    monitored = [c for c in children if c["kind"] in KINDS]
    assert {c["kind"] for c in monitored} == set(KINDS)
    done = outcome.cp.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        input=yaml.safe_dump_all(monitored), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == 2, done.stdout
