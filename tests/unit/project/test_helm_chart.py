"""charts/promdemo: the Helm chart checked offline with the real helm (v4, pinned).

- its copies of the project's files (CRD, dashboard, ClusterRole rules) are what
  scripts/chart_files.py writes: never edited by hand;
- `helm lint --strict` passes, with the defaults and with every option on;
- `helm template` renders, object for object, what the kustomize overlays build
  (install.yaml's release overlay, kind's, the prod overlay's ServiceMonitor and
  PromDemo, manifests/grafana's dashboard). The differences are intentional and
  normalised here: Helm's own labels (helm.sh/chart, managed-by, instance,
  version; instance also in the selectors, so two releases can share a
  namespace) and the Namespace, which `helm install --create-namespace` makes;
- values.schema.json and the templates' checks refuse bad values at install, with
  the value's path in the message;
- NOTES.txt renders the next commands;
- the packaged chart (`helm package`) renders what the directory renders.

helm is built by hack/upstream/build.sh (the test skips with that command when it
is not built; PROMDEMO_REQUIRE_TOOLS=1 makes that a failure).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.helm import CHART, ROOT, Helm
from tests.support.manifests import documents, generate, kustomize, validate

DIGEST = "sha256:" + "0123456789abcdef" * 4
#: Labels Helm charts carry and kustomize's manifests do not (see the module's text).
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
Key = tuple[str, str, str]


@pytest.fixture
def helm(tmp_path: Path) -> Helm:
    return Helm.require(tmp_path / "helm")


def chart_files() -> ModuleType:
    path = ROOT / "scripts" / "chart_files.py"
    spec = importlib.util.spec_from_file_location("chart_files", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_yaml(tmp_path: Path, image: str) -> list[dict[str, Any]]:
    """What hack/install-yaml.sh IMAGE writes (the release workflow's install.yaml)."""
    return documents(generate(tmp_path, image))


def _drop_helm_labels(labels: dict[str, str] | None) -> None:
    for key in HELM_LABELS:
        (labels or {}).pop(key, None)


def _drop_everywhere(value: Any) -> None:
    """Helm's labels out of every `labels` and `matchLabels` map inside `value`."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("labels", "matchLabels") and isinstance(inner, dict):
                _drop_helm_labels(inner)
            _drop_everywhere(inner)
    elif isinstance(value, list):
        for inner in value:
            _drop_everywhere(inner)


def normalised(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without Helm's own labels, wherever labels or selectors hold them."""
    obj = copy.deepcopy(obj)
    _drop_everywhere(obj.get("metadata"))
    if not obj["metadata"].get("labels"):
        obj["metadata"].pop("labels", None)
    spec = obj.get("spec") or {}
    if obj["kind"] == "Service":
        _drop_helm_labels(spec["selector"])
    elif obj["kind"] != "CustomResourceDefinition":  # a CRD's schema has fields named labels
        _drop_everywhere(spec)
    return obj


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {}
    for obj in objects:
        meta = obj["metadata"]
        key = (obj["kind"], str(meta.get("namespace", "")), meta["name"])
        assert key not in keyed, f"{key} twice"
        keyed[key] = normalised(obj)
    return keyed


def assert_same_objects(rendered: list[dict[str, Any]], built: list[dict[str, Any]]) -> None:
    """The same objects, whatever their order; a difference names the object and the field."""
    ours, theirs = by_key(rendered), by_key(built)
    assert sorted(ours) == sorted(theirs)
    for key, obj in ours.items():
        assert obj == theirs[key], f"{key} differs:\n{_diff(obj, theirs[key])}"


def _diff(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        lines = [_diff(a.get(k), b.get(k), f"{path}.{k}") for k in sorted({*a, *b}, key=str)]
        return "\n".join(line for line in lines if line)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return "\n".join(
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            if (d := _diff(x, y, f"{path}[{i}]"))
        )
    return "" if a == b else f"  {path}: chart {a!r} != kustomize {b!r}"


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def hooks(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if "helm.sh/hook" in (o["metadata"].get("annotations") or {})]


ALL_ON = [
    "--set",
    "sample.enabled=true,serviceMonitor.enabled=true,grafanaDashboard.enabled=true",
    "--set",
    "leaderElection.enabled=true,replicas=2",
    "--set-json",
    'monitoring.labels={"release":"prometheus"}',
]


# --------------------------------------------------------------------------- the copies


def test_the_charts_copies_are_what_make_chart_writes() -> None:
    module = chart_files()
    assert [p.relative_to(ROOT).as_posix() for p in module.stale()] == [], "run make chart"
    # The CRD is the project's, byte for byte.
    crd = ROOT / "crds" / "promdemos.promdemo.dev.yaml"
    assert (CHART / "crds" / crd.name).read_bytes() == crd.read_bytes()


def test_make_chart_rewrites_a_stale_copy_and_check_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scripts/chart_files.py --check` (the release workflow's) on a copy of the chart."""
    module = chart_files()
    chart = tmp_path / "charts" / "promdemo"
    shutil.copytree(CHART, chart)
    monkeypatch.setattr(module, "ROOT", tmp_path)  # where paths are named from
    monkeypatch.setattr(module, "CHART", chart)
    stale = chart / "crds" / "promdemos.promdemo.dev.yaml"
    stale.write_text(stale.read_text() + "# an edit by hand\n")
    assert module.main(["--check"]) == 1
    assert capsys.readouterr().err == (
        "charts/promdemo/crds/promdemos.promdemo.dev.yaml is stale: run make chart\n"
    )
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
    assert stale.read_bytes() == (ROOT / "crds" / stale.name).read_bytes()
    assert module.main(["--bogus"]) == 2


def test_the_rules_copy_is_the_base_clusterroles_rules() -> None:
    module = chart_files()
    rbac = [d for d in yaml.safe_load_all((ROOT / "manifests/base/rbac.yaml").read_text()) if d]
    (role,) = [d for d in rbac if d["kind"] == "ClusterRole"]
    copied = yaml.safe_load(
        module.clusterrole_rules((ROOT / "manifests/base/rbac.yaml").read_text())
    )
    assert copied == {"rules": role["rules"]}


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [[], ALL_ON], ids=["defaults", "every-option-on"])
def test_helm_lint_strict_passes(helm: Helm, values: list[str]) -> None:
    out = helm.ok("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", [[], ALL_ON], ids=["defaults", "every-option-on"])
def test_every_rendered_object_validates(helm: Helm, values: list[str]) -> None:
    """Built-in kinds with kubernetes-validate --strict, the PromDemo against its CRD."""
    objects = helm.template("--include-crds", *values)
    assert {o["kind"] for o in objects} >= {"CustomResourceDefinition", "Deployment"}
    for obj in objects:
        validate(obj)


# --------------------------------------------------------------------------- no drift


def test_defaults_render_what_install_yaml_installs_less_the_namespace(
    helm: Helm, tmp_path: Path
) -> None:
    built = install_yaml(tmp_path, "ghcr.io/promdemo/promdemo:0.1.0")
    namespaces = find(built, "Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == ["promdemo-system"]
    assert_same_objects(
        helm.template("--include-crds"), [o for o in built if o["kind"] != "Namespace"]
    )


def test_a_digest_renders_what_the_release_workflows_install_yaml_pins(
    helm: Helm, tmp_path: Path
) -> None:
    built = install_yaml(tmp_path, f"ghcr.io/promdemo/promdemo@{DIGEST}")
    rendered = helm.template("--include-crds", "--set", f"image.digest={DIGEST}")
    assert_same_objects(rendered, [o for o in built if o["kind"] != "Namespace"])


def test_pull_policy_never_renders_the_kind_overlay(helm: Helm) -> None:
    built = [o for o in kustomize("kind") if o["kind"] != "Namespace"]
    assert_same_objects(helm.template("--include-crds", "--set", "image.pullPolicy=Never"), built)


def test_the_optional_objects_are_the_prod_overlays_and_grafanas(helm: Helm) -> None:
    """The operator's ServiceMonitor and a PromDemo as manifests/overlays/prod has them
    (everything in `monitoring`, labelled release: prometheus), and the dashboard
    ConfigMap of manifests/grafana."""
    prod = by_key(kustomize("prod"))
    promdemo = prod[("PromDemo", "monitoring", "order-service")]
    rendered = helm.template(
        "-n",
        "monitoring",
        "--set",
        "serviceMonitor.enabled=true,sample.enabled=true,sample.name=order-service",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set-json",
        'monitoring.labels={"release":"prometheus"}',
        "--set-json",
        f"sample.spec={json.dumps(promdemo['spec'])}",
    )
    ours = by_key([o for o in rendered if o not in hooks(rendered)])
    monitor = ("ServiceMonitor", "monitoring", "promdemo-operator")
    # prod adds its ServiceMonitor beside manifests/base, whose part-of label it lacks;
    # the chart labels every object of the operator alike.
    assert ours[monitor]["metadata"]["labels"].pop("app.kubernetes.io/part-of") == "promdemo"
    assert ours[monitor] == prod[monitor]
    # The PromDemo: the same spec; prod's Argo CD annotations and release label are
    # prod's (kustomize labels every object there), the chart's part-of is its own.
    sample = ours[("PromDemo", "monitoring", "order-service")]
    assert sample["spec"] == promdemo["spec"]
    (dashboard,) = kustomize("../grafana")  # manifests/grafana
    assert ours[("ConfigMap", "monitoring", "promdemo-dashboard")] == normalised(
        {**dashboard, "metadata": {**dashboard["metadata"], "namespace": "monitoring"}}
    )


# --------------------------------------------------------------------------- values


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_watch_namespaces_replace_all_namespaces(helm: Helm) -> None:
    objects = helm.template("--set-json", 'watchNamespaces=["demo","team-*"]')
    container = operator_container(objects)
    assert container["args"][:5] == ["operator", "--namespace", "demo", "--namespace", "team-*"]
    assert "--all-namespaces" not in container["args"]


def test_leader_election_passes_the_flag_and_rolls_out_replica_by_replica(helm: Helm) -> None:
    objects = helm.template("--set", "leaderElection.enabled=true,replicas=2")
    (deployment,) = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    container = operator_container(objects)
    assert container["args"] == ["operator", "--all-namespaces", "--leader-elect"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )
    (role,) = find(objects, "Role")
    assert role["metadata"]["namespace"] == "promdemo-system"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "patch"],
        }
    ]
    (binding,) = find(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "promdemo-operator", "namespace": "promdemo-system"}
    ]
    (pdb,) = find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"] == deployment["spec"]["selector"]


def test_one_replica_has_no_lease_no_budget_and_no_anti_affinity(helm: Helm) -> None:
    objects = helm.template("--set", "replicas=1,leaderElection.enabled=false")
    assert find(objects, "Role") == find(objects, "PodDisruptionBudget") == []
    (deployment,) = find(objects, "Deployment")
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    assert [e["name"] for e in operator_container(objects)["env"]] == [
        "POD_NAMESPACE",
        "PROMDEMO_WEBHOOK_TOKEN",
    ]


def test_another_release_name_gets_its_own_lease(helm: Helm) -> None:
    text = helm.ok(
        "template", "shop", str(CHART), "--set", "leaderElection.enabled=true,replicas=2"
    )
    (deployment,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "shop-operator"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--leader-elect-lease-name", "shop-operator"]


def test_the_sample_carries_the_monitoring_labels_and_a_pre_delete_cleanup(helm: Helm) -> None:
    objects = helm.template(
        "--set",
        "sample.enabled=true",
        "--set-json",
        'monitoring.labels={"release":"prometheus"}',
        "--set-json",
        'sample.spec={"replicas":2,"monitoring":{"labels":{"team":"shop"}}}',
    )
    (sample,) = find(objects, "PromDemo")
    assert sample["metadata"] == {
        "name": "shop",
        "namespace": "promdemo-system",
        "labels": {
            "app.kubernetes.io/instance": "promdemo",
            "app.kubernetes.io/part-of": "promdemo",
            "app.kubernetes.io/managed-by": "Helm",
        },
    }
    assert sample["spec"] == {
        "replicas": 2,
        "monitoring": {"labels": {"team": "shop", "release": "prometheus"}},
    }
    validate(sample)
    cleanup = {o["kind"]: o for o in hooks(objects)}
    assert sorted(cleanup) == ["Pod", "Role", "RoleBinding", "ServiceAccount"]
    for obj in cleanup.values():
        assert obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    (rule,) = cleanup["Role"]["rules"]
    assert rule == {
        "apiGroups": ["promdemo.dev"],
        "resources": ["promdemos"],
        "resourceNames": ["shop"],
        "verbs": ["get", "delete"],
    }
    job = cleanup["Pod"]
    assert job["spec"]["restartPolicy"] == "Never"
    (container,) = job["spec"]["containers"]
    assert container["args"] == ["promdemo-system", "shop", "120"]
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == (CHART / "files" / "delete_sample.py").read_text()
    # The operator's Service must not select the Job's pod.
    (service,) = find(objects, "Service")
    pod_labels = job["metadata"]["labels"]
    assert not all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())


def test_without_the_sample_there_is_no_hook(helm: Helm) -> None:
    assert hooks(helm.template()) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicas=two"], "at '/replicas': got string, want integer"),
        (["--set", "replicas=-1"], "at '/replicas': minimum: got -1, want 0"),
        (
            ["--set", "image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (["--set", "imag.tag=1"], "additional properties 'imag' not allowed"),
        (
            ["--set-json", 'monitoring.labels={"release":true}'],
            "at '/monitoring/labels/release': got boolean, want string",
        ),
        (
            ["--set", "monitoring.labels.release=not a label"],
            "at '/monitoring/labels/release': 'not a label' does not match pattern",
        ),
        (["--set", "image.digest=sha256:abc"], "at '/image/digest': 'sha256:abc' does not match"),
        (["--set", "watchNamespaces[0]=Demo"], "at '/watchNamespaces/0': 'Demo' does not match"),
        (["--set", "serviceMonitor.interval=15"], "at '/serviceMonitor/interval'"),
        (["--set", "sample.name=Shop"], "at '/sample/name': 'Shop' does not match"),
        (
            ["--set", "replicas=3,leaderElection.enabled=false"],
            "replicas: 3 operators need leaderElection.enabled=true",
        ),
        (
            ["--set", "serviceAccount.create=false"],
            "serviceAccount.name: name an existing ServiceAccount",
        ),
    ],
)
def test_bad_values_fail_with_the_values_path(helm: Helm, values: list[str], message: str) -> None:
    result = helm.run("template", "promdemo", str(CHART), *values)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


# --------------------------------------------------------------------------- NOTES


def notes(helm: Helm, *values: str) -> str:
    """NOTES.txt as `helm install` prints it (a client-side dry run: no cluster)."""
    out = helm.ok(
        "install", "promdemo", str(CHART), "-n", "promdemo-system", "--dry-run=client", *values
    )
    return out.split("NOTES:\n", 1)[1]


def test_notes_tell_the_next_commands(helm: Helm) -> None:
    text = notes(helm)
    assert "kubectl -n promdemo-system rollout status deploy/promdemo-operator" in text
    assert (
        "kubectl -n demo apply -f https://raw.githubusercontent.com/promdemo/promdemo/v0.1.0/manifests/samples/minimal.yaml"
        in text
    )
    assert "kubectl -n demo get pd" in text
    assert "kubectl promdemo doctor -n demo" in text
    assert "spec.monitoring.labels" in text
    # The sample named there exists in the repository at that path.
    assert (ROOT / "manifests" / "samples" / "minimal.yaml").is_file()


def test_notes_follow_the_sample_and_the_labels(helm: Helm) -> None:
    text = notes(
        helm,
        "--set",
        "sample.enabled=true,sample.namespace=demo",
        "--set-json",
        'monitoring.labels={"release":"prometheus"}',
    )
    assert "kubectl -n demo get pd shop -w" in text
    assert "kubectl promdemo doctor -n demo" in text
    assert 'spec: {monitoring: {labels: {"release":"prometheus"}}}' in text
    assert "deleted by the chart's pre-delete hook" in text


# --------------------------------------------------------------------------- package


def test_the_packaged_chart_renders_what_the_directory_renders(helm: Helm, tmp_path: Path) -> None:
    out = helm.ok("package", str(CHART), "--destination", str(tmp_path))
    package = tmp_path / "promdemo-0.1.0.tgz"
    assert str(package) in out
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    for name in (
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "crds/promdemos.promdemo.dev.yaml",
        "files/dashboard.json",
        "files/clusterrole-rules.yaml",
        "files/delete_sample.py",
        "templates/NOTES.txt",
    ):
        assert f"promdemo/{name}" in names
    for values in ([], ALL_ON):
        assert helm.template("--include-crds", *values, chart=package) == helm.template(
            "--include-crds", *values
        )
