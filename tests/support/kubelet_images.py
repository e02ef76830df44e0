"""The kubelet stand-in (tests/support/kubelet.py), able to run the pods prometheus-operator
asks for: its images mapped to upstream binaries, and init containers.

`ImageKubelet` runs, besides the project's `promdemo` image:

- `prometheus` (quay.io/prometheus/prometheus, any tag) as the Prometheus 3 that
  hack/upstream/build.sh built (the image's ENTRYPOINT is `/bin/prometheus`; the
  operator gives only `args`);
- `prometheus-config-reloader` (quay.io/prometheus-operator/..., any tag) as the
  reloader built with prometheus-operator (`command: [/bin/prometheus-config-reloader]`
  becomes the built binary, `args` as given);
- `alertmanager` (quay.io/prometheus/alertmanager) as the built Alertmanager.

The tag is not checked: the binary is the pinned version of hack/upstream/versions.env,
whatever the pod asks for. An image whose binary is not built fails the pod as the
base class does (`ErrImagePull`).

Init containers (the base class has none): before a pod's first container starts,
each of its `initContainers` runs to completion, in order, with the pod's volumes,
network and environment, as a kubelet runs them; one that exits non-zero (or runs
longer than INIT_TIMEOUT_SECONDS) fails the pod. prometheus-operator's
`init-config-reloader` is one: it un-gzips the generated configuration from the
`prometheus-<name>` Secret into the `config_out` emptyDir before Prometheus starts.

Volume updates, as a kubelet syncs them: every REFRESH_SECONDS, the files of each
running pod's `secret` and `configMap` volumes follow their object (a changed key is
rewritten by a rename, so a reader never sees half a file; a key gone is removed).
The base class writes them once, at the pod's start; prometheus-operator changes
the configuration Secret and the rule-file ConfigMaps of a running Prometheus
whenever a ServiceMonitor or PrometheusRule comes or goes, and its
config-reloader (watching those files) makes Prometheus reload them.

Mount points. The base class creates each `mountPath` on the host's filesystem
before it binds the volume there in the process's own mount namespace (only what is
under /run lives in that namespace's tmpfs): prometheus-operator's pods mount under
/etc/prometheus and /prometheus. This one notes which of those paths did not exist
before a container started and removes them at `stop()` if they are still empty
(empty directories, empty files: never anything with content).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
from pathlib import Path
from typing import Any

from tests.support.kubelet import Container, Kubelet, Pod, image_name
from tests.support.upstream import find_upstream

#: image name (any registry, any tag) -> (hack/upstream tool, binary)
UPSTREAM_IMAGES = {
    "prometheus": ("prometheus", "prometheus"),
    "prometheus-config-reloader": ("prometheus-operator", "prometheus-config-reloader"),
    "alertmanager": ("alertmanager", "alertmanager"),
}
INIT_TIMEOUT_SECONDS = 60.0
REFRESH_SECONDS = 2.0


class ImageKubelet(Kubelet):
    """The kubelet stand-in with prometheus-operator's images and init containers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initialized: set[str] = set()  # pod uids whose init containers ran
        self._made: list[Path] = []  # host paths created as mount points
        self._refresh_at: dict[str, float] = {}  # pod uid -> next volume refresh

    def _tend(self, pod: Pod, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        if not pod.failed and now >= self._refresh_at.get(pod.uid, 0.0):
            self._refresh_at[pod.uid] = now + REFRESH_SECONDS
            for volume in (obj.get("spec") or {}).get("volumes") or []:
                with contextlib.suppress(KeyError, urllib.error.HTTPError):
                    self._refresh(pod, volume)
        super()._tend(pod, obj)

    def _refresh(self, pod: Pod, volume: dict[str, Any]) -> None:
        if "secret" in volume:
            source = volume["secret"]
            data = self._secret_data(pod.namespace, source.get("secretName", ""),
                                     optional=bool(source.get("optional")))  # fmt: skip
        elif "configMap" in volume:
            source = volume["configMap"]
            data = self._configmap_data(pod.namespace, source.get("name", ""),
                                        optional=bool(source.get("optional")))  # fmt: skip
        else:
            return
        target = pod.root / "volumes" / volume["name"]
        items = source.get("items")
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in pairs:
            file = target / path
            if key in data and (not file.is_file() or file.read_bytes() != data[key]):
                file.parent.mkdir(parents=True, exist_ok=True)
                staged = file.with_name(f".{file.name}.new")
                staged.write_bytes(data[key])
                mode = source.get("defaultMode")
                staged.chmod(int(mode) if isinstance(mode, int) else 0o644)
                os.replace(staged, file)
        if not items:
            for file in target.iterdir():
                if file.is_file() and not file.name.startswith(".") and file.name not in data:
                    file.unlink()

    def stop(self) -> None:
        super().stop()
        for top in reversed(self._made):
            _remove_empty(top)
        self._made.clear()

    def _note_mount_points(self, spec: dict[str, Any]) -> None:
        for mount in spec.get("volumeMounts") or []:
            path = Path(mount["mountPath"])
            if str(path).startswith(("/run/", "/var/run/")):
                continue  # the namespace's own tmpfs
            missing = None
            for p in (path, *path.parents):
                if p.exists():
                    break
                missing = p
            if missing is not None and missing not in self._made:
                self._made.append(missing)

    def _argv(self, spec: dict[str, Any]) -> list[str]:
        image = image_name(str(spec.get("image", "")))
        if image not in UPSTREAM_IMAGES:
            return super()._argv(spec)
        tool, binary = UPSTREAM_IMAGES[image]
        path = find_upstream(tool, binary)
        if path is None:
            raise ValueError(f"ErrImagePull: {binary} is not built (hack/upstream/build.sh {tool})")
        command = list(spec.get("command") or [])
        if command and Path(command[0]).name != binary:
            raise ValueError(f"image {image!r} has no program {command[0]!r}")
        return [str(path), *command[1:], *(spec.get("args") or [])]

    def _run(
        self, pod: Pod, obj: dict[str, Any], container: Container, mounts: dict[str, Path]
    ) -> None:
        self._note_mount_points(container.spec)
        if pod.uid not in self._initialized and pod.containers and container is pod.containers[0]:
            self._initialized.add(pod.uid)
            for spec in (obj.get("spec") or {}).get("initContainers") or []:
                self._run_init(pod, obj, spec, mounts)
        super()._run(pod, obj, container, mounts)

    def _run_init(
        self, pod: Pod, obj: dict[str, Any], spec: dict[str, Any], mounts: dict[str, Path]
    ) -> None:
        init = Container(spec["name"], spec, pod.root / f"init-{spec['name']}.log")
        self._note_mount_points(spec)
        super()._run(pod, obj, init, mounts)
        assert init.popen is not None
        try:
            code = init.popen.wait(timeout=INIT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as e:
            init.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                init.popen.wait(timeout=5)
            message = f"init container {init.name} ran over {INIT_TIMEOUT_SECONDS:.0f}s"
            raise ValueError(message) from e
        if code != 0:
            tail = init.log.read_text(errors="replace")[-500:]
            raise ValueError(f"init container {init.name} exited {code}: {tail}")


def _remove_empty(top: Path) -> None:
    """Remove `top` and what is under it, if all of it is empty directories and files."""
    if top.is_file() and not top.is_symlink():
        if top.stat().st_size == 0:
            top.unlink()
        return
    if not top.is_dir() or top.is_symlink():
        return
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            file = Path(root, name)
            if file.is_file() and not file.is_symlink() and file.stat().st_size == 0:
                file.unlink()
        for name in dirs:
            with contextlib.suppress(OSError):  # not empty: kept
                Path(root, name).rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()
