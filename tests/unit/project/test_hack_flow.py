"""The kind scripts' control flow, run against stub docker/kind/kubectl/helm.

Each stub records its arguments (and stdin) and answers the few queries the
scripts make from a small state directory. PATH holds the stubs and a handful of
coreutils only, so a script that called anything else would fail here as it
would on a laptop without it. What a real cluster does is the e2e suite's job;
this checks the decisions the scripts make: the order of deletions, the image
they deploy and run, and that `make demo` fails when nothing heals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
COREUTILS = ["bash", "cat", "dirname", "grep", "head", "mkdir", "mktemp", "mv", "od", "rm",
             "sed", "seq", "tr", "env"]  # fmt: skip

STUB = r"""#!/usr/bin/env bash
# A stub of {name}: records the call, answers from $STATE.
tool={name}
line="$tool $*"
printf '%s\n' "$line" >>"$STATE/calls"  # one write: piped stubs run at once
if [ ! -t 0 ] && [ "$tool" = kubectl ]; then
  case " $* " in *" -f - "*) cat >>"$STATE/applied.yaml";; esac
fi
case "$tool $*" in
  *"get clusters"*) cat "$STATE/clusters" 2>/dev/null ;;
  *"jsonpath={{.status.healCount}}"*)
    n=$(cat "$STATE/heals"); echo "$n"
    if [ -f "$STATE/grow" ]; then echo $((n + 1)) >"$STATE/heals"; fi ;;
  *"jsonpath={{.status.phase}}"*) cat "$STATE/load-phase" ;;
  "docker image inspect"*) [ -f "$STATE/image-built" ]; exit $? ;;
  "kubectl kustomize"*) exec "$REAL_KUBECTL" "${{@}}" ;;
esac
exit 0
"""


@pytest.fixture
def stubs(tmp_path: Path) -> dict[str, Path]:
    """A PATH of stub docker/kind/kubectl/helm + coreutils, and their state directory."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name in ("docker", "kind", "kubectl", "helm"):
        path = bin_dir / name
        path.write_text(STUB.format(name=name))
        path.chmod(0o755)
    for tool in COREUTILS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run this test"
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "sleep").write_text("#!/usr/bin/env bash\nexit 0\n")  # no waiting
    (bin_dir / "sleep").chmod(0o755)
    (state / "heals").write_text("0\n")
    (state / "load-phase").write_text("Succeeded\n")
    return {"bin": bin_dir, "state": state}


def run_script(stubs: dict[str, Path], script: str, **env: str) -> subprocess.CompletedProcess:
    real_kubectl = shutil.which("kubectl") or ""
    full_env = {
        "PATH": str(stubs["bin"]),
        "STATE": str(stubs["state"]),
        "REAL_KUBECTL": real_kubectl,
        "HOME": str(stubs["state"]),
        **env,
    }
    return subprocess.run(
        ["bash", f"hack/{script}"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def calls(stubs: dict[str, Path]) -> list[str]:
    path = stubs["state"] / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_demo_runs_the_load_in_the_cluster_and_passes_when_heal_count_grows(stubs) -> None:
    (stubs["state"] / "grow").touch()
    result = run_script(stubs, "demo.sh", IMAGE="example.com/promdemo:dev")
    assert result.returncode == 0, result.stderr
    made = calls(stubs)
    assert all(c.startswith("kubectl --context kind-promdemo ") for c in made), made
    patch = next(c for c in made if " patch promdemo shop " in c)
    assert '"image":"example.com/promdemo:dev"' in patch
    load = next(c for c in made if " run promdemo-load " in c)
    assert "--image=example.com/promdemo:dev" in load
    assert load.endswith("promdemo load http://shop:8080 --orders 300 --concurrency 300")
    assert "went from 0 to 1" in result.stderr


def test_demo_fails_when_heal_count_does_not_grow(stubs) -> None:
    result = run_script(stubs, "demo.sh")
    assert result.returncode != 0
    assert "status.healCount stayed at 0" in result.stderr


def test_demo_fails_when_the_load_pod_fails(stubs) -> None:
    (stubs["state"] / "load-phase").write_text("Failed\n")
    (stubs["state"] / "grow").touch()
    result = run_script(stubs, "demo.sh")
    assert result.returncode != 0
    assert "the load pod ended as 'Failed'" in result.stderr


def test_deploy_applies_the_kind_overlay_with_the_image(stubs) -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl builds the overlay")
    result = run_script(stubs, "deploy.sh", IMAGE="registry.local:5000/promdemo@sha256:" + "a" * 64)
    assert result.returncode == 0, result.stderr
    applied = (stubs["state"] / "applied.yaml").read_text()
    assert "image: registry.local:5000/promdemo@sha256:" + "a" * 64 in applied
    assert "imagePullPolicy: Never" in applied
    assert "kind: CustomResourceDefinition" in applied
    assert not list((ROOT / "manifests" / "overlays").glob(".image.*")), (
        "a temporary overlay is left"
    )


def test_undeploy_deletes_promdemos_before_the_namespace_and_the_operator(stubs) -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl builds the overlay")
    result = run_script(stubs, "undeploy.sh")
    assert result.returncode == 0, result.stderr
    made = [c for c in calls(stubs) if " delete " in c]
    assert "delete promdemos --all --all-namespaces" in made[0], made
    assert "delete namespace demo" in made[1], made
    assert "delete -f -" in made[2], made


def test_kind_up_checks_helm_before_it_creates_a_cluster(stubs) -> None:
    (stubs["bin"] / "helm").unlink()
    result = run_script(stubs, "kind-up.sh")
    assert result.returncode != 0
    assert "helm is not installed" in result.stderr
    assert not any("create cluster" in c for c in calls(stubs)), calls(stubs)
    # Without kube-prometheus-stack, helm is not needed.
    result = run_script(stubs, "kind-up.sh", STACK="none")
    assert result.returncode == 0, result.stderr
    assert any(c.startswith("kind create cluster --name promdemo --config hack/kind.yaml")
               for c in calls(stubs))  # fmt: skip


def test_kind_load_saves_the_image_and_loads_the_archive(stubs) -> None:
    (stubs["state"] / "clusters").write_text("promdemo\n")
    result = run_script(stubs, "kind-load.sh")
    assert result.returncode != 0, "no image built: make image first"
    assert "make image first" in result.stderr
    (stubs["state"] / "image-built").touch()
    result = run_script(stubs, "kind-load.sh")
    assert result.returncode == 0, result.stderr
    made = calls(stubs)
    save = next(c for c in made if c.startswith("docker save"))
    archive = save.split("-o ", 1)[1].split()[0]
    assert save.endswith("ghcr.io/promdemo/promdemo:0.1.0")
    assert f"kind load image-archive {archive} --name promdemo" in made
    assert not os.path.exists(archive), "the archive is removed"
