"""The cluster tier's fixtures, where they decide without a cluster: when the control
plane cannot run (skip, or fail in CI), and how the kubelet stand-in turns a
container's image, command and args into a program, as Kubernetes does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support import controlplane
from tests.support.kubelet import Kubelet, image_name


def test_not_root_skips_with_the_reason_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = controlplane.missing_requirements()
    assert reason is not None
    assert "needs root" in reason
    monkeypatch.delenv("PROMDEMO_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        controlplane.require_controlplane()
    monkeypatch.setenv("PROMDEMO_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="PROMDEMO_REQUIRE_TOOLS=1"):
        controlplane.require_controlplane()


def test_a_missing_build_names_the_command_that_builds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(controlplane.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("PROMDEMO_UPSTREAM_CACHE", str(tmp_path))
    reason = controlplane.missing_requirements()
    assert reason is not None
    assert "make controlplane" in reason


def test_image_names_ignore_registry_tag_and_digest() -> None:
    assert image_name("ghcr.io/promdemo/promdemo:0.1.0") == "promdemo"
    assert image_name("promdemo") == "promdemo"
    assert image_name("registry:5000/x/promdemo@sha256:abc") == "promdemo"
    assert image_name("nginx:1.27") == "nginx"


def argv(spec: dict) -> list[str]:
    kubelet = Kubelet.__new__(Kubelet)
    kubelet.bin_dir = Path(sys.executable).parent
    return [Path(a).name if i == 0 else a for i, a in enumerate(kubelet._argv(spec))]


def test_command_and_args_override_the_image_as_in_kubernetes() -> None:
    image = {"image": "ghcr.io/promdemo/promdemo:0.1.0"}
    assert argv(image) == ["promdemo-app", "--host", "0.0.0.0", "--port", "8080"]
    assert argv({**image, "args": ["--port", "9000"]}) == ["promdemo-app", "--port", "9000"]
    # A command without args: the image's CMD is not used either.
    assert argv({**image, "command": ["promdemo"]}) == ["promdemo"]
    assert argv({**image, "command": ["promdemo"], "args": ["operator", "-A"]}) == [
        "promdemo", "operator", "-A",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="ErrImagePull"):
        argv({"image": "nginx:1.27"})
