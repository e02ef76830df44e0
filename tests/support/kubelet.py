"""A kubelet stand-in for the test control plane (tests/support/controlplane.py).

There is no scheduler, no container runtime and no kube-proxy in the test cluster;
this one thread plays the node's part, as the API server sees it:

- registers one Node (`promdemo-node`), Ready, with the control plane's node IP;
- binds every Pending pod to it (`pods/binding`, as the scheduler would);
- runs each container as a local process, in a network namespace of the pod's own
  (`ControlPlane.add_pod_network`: its own IP from the control plane's pod range, so
  a process binding 0.0.0.0:8080 gets only that pod's address, as in a real pod).
  The image decides the program: any image named `promdemo` (any registry or tag)
  is this project's image, whose ENTRYPOINT is `promdemo-app` and CMD `--host 0.0.0.0
  --port 8080` (the Dockerfile's); `command` and `args` override them as in
  Kubernetes, and programs are found in this Python's bin directory first (the
  installed `promdemo-app` / `promdemo` entry points). Other images fail the pod
  with reason `ErrImagePull`;
- the container's environment: `value`, `valueFrom` (`secretKeyRef`,
  `configMapKeyRef`, `fieldRef`; `optional` honoured), plus `HOSTNAME` and
  `KUBERNETES_SERVICE_HOST/PORT` pointing at the API server's own address (no
  kube-proxy: the `kubernetes` Service's cluster IP leads nowhere); nothing is
  inherited from the test process but `PATH`;
- volumes as files, mounted at their `mountPath` in the process's own mount
  namespace (a tmpfs over /run first, so `/var/run/secrets/...` never touches the
  host): `secret` and `configMap` (items, optional), `emptyDir`, `projected`
  (`serviceAccountToken` from TokenRequest bound to the pod, `configMap`,
  `downwardAPI` metadata fields), a mount's `subPath` (a file or directory of the
  volume) — the ServiceAccount admission plugin's
  `kube-api-access-*` volume is such a projected volume, so a pod's process finds
  its token and `ca.crt` where client libraries look;
- status: `podIP`, `Running`, and `Ready` / `ContainersReady` from each
  container's `readinessProbe` (`httpGet`, the port by name or number), probed
  every `min(periodSeconds, probe_period)` seconds (1 s by default: tests do not
  wait 10 s for a probe; `failureThreshold` and `successThreshold` honoured);
- a container that exits is restarted (`restartPolicy: Always`) after a second,
  with `restartCount` counted;
- a pod being deleted: SIGTERM to each process, SIGKILL when the grace period
  (`deletionGracePeriodSeconds`) is over, then the pod is deleted with grace 0 (the
  kubelet's part in deletion; without it a namespace never finishes terminating);
  a new pod gets a new IP, unless a test asked for one with `pin_next_ip` (a
  CNI may hand a freed address to the next pod at once: the IP-reuse fault).

Not modelled: liveness probes, resource limits, `runAsUser` and
`readOnlyRootFilesystem` (processes run as the test's user), init containers,
`kubectl logs`/`exec` (the kubelet API): `Kubelet.logs(namespace, pod)` reads a
pod's output instead.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane

log = logging.getLogger("promdemo.test.kubelet")

NODE_NAME = "promdemo-node"
#: The project's image (Dockerfile): ENTRYPOINT and CMD.
IMAGES = {"promdemo": (["promdemo-app"], ["--host", "0.0.0.0", "--port", "8080"])}
POLL_SECONDS = 0.25
RESTART_DELAY_SECONDS = 1.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def image_name(image: str) -> str:
    """`ghcr.io/promdemo/promdemo:0.1.0` → `promdemo`."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


@dataclass
class Container:
    name: str
    spec: dict[str, Any]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    started_at: str = ""
    restart_at: float | None = None
    successes: int = 0
    failures: int = 0
    next_probe: float = 0.0


@dataclass
class Pod:
    namespace: str
    name: str
    uid: str
    ip: str
    netns: str
    root: Path
    containers: list[Container] = field(default_factory=list)
    started_at: str = ""
    kill_at: float | None = None
    reported: dict[str, Any] | None = None
    failed: str | None = None


class Kubelet:
    """One Node's kubelet, as a thread: bind, run, probe, report, terminate."""

    def __init__(
        self,
        cp: ControlPlane,
        *,
        node_name: str = NODE_NAME,
        probe_period: float = 1.0,
        bin_dir: Path | None = None,
    ) -> None:
        self.cp = cp
        self.node_name = node_name
        self.probe_period = probe_period
        self.bin_dir = bin_dir or Path(sys.executable).parent
        self.root = cp.workdir / "kubelet"
        self.pods: dict[str, Pod] = {}  # by uid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self._pinned: dict[str, str] = {}  # namespace -> the IP its next pod gets

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Kubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Kubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and every pod's processes (the pod objects stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for pod in list(self.pods.values()):
            self._signal(pod, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pod in list(self.pods.values()):
            for c in pod.containers:
                if c.popen is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            self._teardown(pod)
        self.pods.clear()

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """What a pod's container(s) wrote to stdout/stderr (every run of them)."""
        out = []
        for p in self.pods.values():
            if (p.namespace, p.name) == (namespace, pod):
                for c in p.containers:
                    if container in (None, c.name) and c.log.exists():
                        out.append(c.log.read_text(errors="replace"))
        for path in sorted(self.root.glob(f"{namespace}_{pod}_*/*.log")):
            if container in (None, path.stem) and not any(
                path == c.log for p in self.pods.values() for c in p.containers
            ):
                out.append(path.read_text(errors="replace"))
        return "".join(out)

    def pin_next_ip(self, namespace: str, ip: str) -> None:
        """The next pod started in `namespace` gets `ip`, as soon as no running pod of this
        node holds it (e.g. the address a pod just deleted had): the pod waits till then."""
        self._pinned[namespace] = ip

    def _ip_busy(self, ip: str) -> bool:
        return any(p.ip == ip for p in self.pods.values())

    # -- the node ----------------------------------------------------------------------

    def _register_node(self) -> None:
        status = {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "promdemo's kubelet stand-in is ready",
                            "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}],
            "addresses": [{"type": "InternalIP", "address": self.cp.node_ip},
                          {"type": "Hostname", "address": self.node_name}],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "nodeInfo": {"kubeletVersion": self.cp.kubernetes_version, "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "promdemo://0",
                         "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                         "machineID": "", "systemUUID": "", "bootID": ""},
        }  # fmt: skip
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": {
                "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux"}},
        }  # fmt: skip
        with contextlib.suppress(urllib.error.HTTPError):
            self.cp.request("POST", "/api/v1/nodes", node)
        self.cp.request(
            "PATCH", f"/api/v1/nodes/{self.node_name}/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as e:  # the API server may be restarting: try again
                message = f"{type(e).__name__}: {e}"
                if not self.errors or self.errors[-1] != message:
                    self.errors.append(message)
                    del self.errors[:-50]
                log.debug("kubelet sync failed: %s", message)
            self._stop.wait(POLL_SECONDS)

    def _sync(self) -> None:
        listing = self.cp.request("GET", "/api/v1/pods?resourceVersion=0", timeout=10)
        seen: set[str] = set()
        for obj in listing.get("items", []):
            meta = obj["metadata"]
            uid = meta["uid"]
            seen.add(uid)
            node = (obj.get("spec") or {}).get("nodeName")
            deleting = meta.get("deletionTimestamp") is not None
            if not node and not deleting:
                self._bind(obj)
                continue
            if node != self.node_name and node:
                continue
            pod = self.pods.get(uid)
            if deleting:
                self._terminate(obj, pod)
                continue
            if pod is None:
                if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                pinned = self._pinned.get(meta["namespace"])
                if pinned is not None and self._ip_busy(pinned):
                    continue  # its address is still another pod's: started once it is free
                pod = self._start(obj)
            self._tend(pod, obj)
        for uid in [u for u in self.pods if u not in seen]:  # deleted with grace 0 by someone
            pod = self.pods.pop(uid)
            self._signal(pod, signal.SIGKILL)
            self._teardown(pod)

    def _bind(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._api_ignore_missing(
            "POST",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
            {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
             "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}},
        )  # fmt: skip

    def _api_ignore_missing(self, method: str, path: str, body: Any = None, **kw: Any) -> None:
        try:
            self.cp.request(method, path, body, **kw)
        except urllib.error.HTTPError as e:
            if e.code not in (404, 409):
                raise

    # -- starting a pod -------------------------------------------------------------------

    def _start(self, obj: dict[str, Any]) -> Pod:
        meta = obj["metadata"]
        ip = self._pinned.pop(meta["namespace"], None) or self.cp.allocate_pod_ip()
        root = self.root / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        root.mkdir(parents=True, exist_ok=True)
        netns = self.cp.add_pod_network(ip)
        pod = Pod(meta["namespace"], meta["name"], meta["uid"], ip, netns, root,
                  started_at=_now())  # fmt: skip
        self.pods[pod.uid] = pod
        try:
            mounts = self._volumes(pod, obj)
            for spec in (obj.get("spec") or {}).get("containers") or []:
                container = Container(spec["name"], spec, root / f"{spec['name']}.log")
                pod.containers.append(container)
                self._run(pod, obj, container, mounts)
        except (KeyError, ValueError, OSError, urllib.error.HTTPError) as e:
            pod.failed = f"{type(e).__name__}: {e}"
            log.warning("pod %s/%s cannot start: %s", pod.namespace, pod.name, pod.failed)
        return pod

    def _volumes(self, pod: Pod, obj: dict[str, Any]) -> dict[str, Path]:
        """Each volume's files in a directory of the pod's: volume name → directory."""
        out: dict[str, Path] = {}
        spec = obj.get("spec") or {}
        for volume in spec.get("volumes") or []:
            target = pod.root / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            out[volume["name"]] = target
            if "secret" in volume:
                source = volume["secret"]
                data = self._secret_data(pod.namespace, source.get("secretName", ""),
                                         optional=bool(source.get("optional")))  # fmt: skip
                self._write_items(target, data, source.get("items"), source.get("defaultMode"))
            elif "configMap" in volume:
                source = volume["configMap"]
                data = self._configmap_data(pod.namespace, source.get("name", ""),
                                            optional=bool(source.get("optional")))  # fmt: skip
                self._write_items(target, data, source.get("items"), source.get("defaultMode"))
            elif "projected" in volume:
                for source in volume["projected"].get("sources") or []:
                    self._projected(pod, obj, target, source)
            # emptyDir (and anything else): an empty directory of the pod's
        return out

    def _projected(
        self, pod: Pod, obj: dict[str, Any], target: Path, source: dict[str, Any]
    ) -> None:
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            account = (obj.get("spec") or {}).get("serviceAccountName") or "default"
            spec: dict[str, Any] = {
                "expirationSeconds": sat.get("expirationSeconds", 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                                   "uid": pod.uid},
            }  # fmt: skip
            if sat.get("audience"):
                spec["audiences"] = [sat["audience"]]
            answer = self.cp.request(
                "POST",
                f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{account}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
            (target / sat.get("path", "token")).write_text(answer["status"]["token"])
        elif "configMap" in source:
            cm = source["configMap"]
            data = self._configmap_data(pod.namespace, cm.get("name", ""),
                                        optional=bool(cm.get("optional")))  # fmt: skip
            self._write_items(target, data, cm.get("items"), None)
        elif "secret" in source:
            sec = source["secret"]
            data = self._secret_data(pod.namespace, sec.get("name", ""),
                                     optional=bool(sec.get("optional")))  # fmt: skip
            self._write_items(target, data, sec.get("items"), None)
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                path = (item.get("fieldRef") or {}).get("fieldPath", "")
                value = self._field(obj, path, pod.ip)
                (target / item["path"]).write_text(value)

    @staticmethod
    def _write_items(
        target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: Any
    ) -> None:
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in pairs:
            if key not in data:
                continue
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data[key])
            file.chmod(int(mode) if isinstance(mode, int) else 0o644)

    def _secret_data(self, namespace: str, name: str, *, optional: bool) -> dict[str, bytes]:
        secret = self.cp.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            if optional:
                return {}
            raise KeyError(f"secret {namespace}/{name} not found")
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def _configmap_data(self, namespace: str, name: str, *, optional: bool) -> dict[str, bytes]:
        cm = self.cp.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        if cm is None:
            if optional:
                return {}
            raise KeyError(f"configmap {namespace}/{name} not found")
        return {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}

    def _field(self, obj: dict[str, Any], path: str, ip: str) -> str:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        values = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
            "status.podIP": ip,
            "status.hostIP": self.cp.node_ip,
        }
        if path not in values:
            raise ValueError(f"fieldRef {path} is not supported by the kubelet stand-in")
        return values[path]

    def _env(self, pod: Pod, obj: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": pod.name,
            "KUBERNETES_SERVICE_HOST": self.cp.apiserver_ip,
            "KUBERNETES_SERVICE_PORT": str(self.cp.server.rsplit(":", 1)[1]),
        }
        for var in spec.get("env") or []:
            name = var["name"]
            if "value" in var:
                env[name] = str(var["value"])
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source or "configMapKeyRef" in source:
                secret = "secretKeyRef" in source
                ref = source["secretKeyRef"] if secret else source["configMapKeyRef"]
                optional = bool(ref.get("optional"))
                reader = self._secret_data if secret else self._configmap_data
                data = reader(pod.namespace, ref.get("name", ""), optional=optional)
                if ref["key"] in data:
                    env[name] = data[ref["key"]].decode()
                elif not optional:
                    raise KeyError(f"key {ref['key']} not in {ref.get('name')}")
            elif "fieldRef" in source:
                env[name] = self._field(obj, source["fieldRef"]["fieldPath"], pod.ip)
        return env

    def _argv(self, spec: dict[str, Any]) -> list[str]:
        image = image_name(str(spec.get("image", "")))
        if image not in IMAGES:
            raise ValueError(f"ErrImagePull: the kubelet stand-in runs no image {image!r}")
        entrypoint, cmd = IMAGES[image]
        command = list(spec.get("command") or entrypoint)
        args = list(spec["args"]) if "args" in spec else ([] if "command" in spec else cmd)
        program = shutil.which(command[0], path=f"{self.bin_dir}:/usr/bin:/bin")
        if program is None:
            raise ValueError(f"{command[0]} is not installed")
        return [program, *command[1:], *args]

    def _run(
        self, pod: Pod, obj: dict[str, Any], container: Container, mounts: dict[str, Path]
    ) -> None:
        spec = container.spec
        env = self._env(pod, obj, spec)
        argv = self._argv(spec)
        # The process's own mount namespace (`ip netns exec` makes one): a tmpfs over /run
        # (/var/run) so secrets mount under it without touching the host; each volume is
        # first bound under it, so a mount over /tmp cannot hide a later volume's source.
        script = ["set -e", "mount -t tmpfs -o size=16m promdemo-run /run"]
        for name, source in mounts.items():
            stage = shlex.quote(f"/run/promdemo-volumes/{name}")
            script.append(f"mkdir -p {stage} && mount --bind {shlex.quote(str(source))} {stage}")
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] not in mounts:
                continue
            stage = shlex.quote(f"/run/promdemo-volumes/{mount['name']}")
            path = shlex.quote(mount["mountPath"])
            sub = mount.get("subPath")
            if sub and (mounts[mount["name"]] / sub).is_file():  # one file of the volume
                stage = shlex.quote(f"/run/promdemo-volumes/{mount['name']}/{sub}")
                parent = shlex.quote(os.path.dirname(mount["mountPath"]))
                script.append(f"mkdir -p {parent} && touch {path} && mount --bind {stage} {path}")
                continue
            if sub:
                stage = shlex.quote(f"/run/promdemo-volumes/{mount['name']}/{sub}")
            script.append(f"mkdir -p {path} && mount --bind {stage} {path}")
        script.append('cd / && exec "$@"')
        with container.log.open("ab") as out:
            container.popen = subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, "sh", "-c", "\n".join(script), "sh", *argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        container.started_at = _now()
        container.ready = False
        container.successes = container.failures = 0
        container.next_probe = time.monotonic() + 0.2

    # -- a running pod ----------------------------------------------------------------------

    def _tend(self, pod: Pod, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        for c in pod.containers:
            if c.popen is not None and c.popen.poll() is not None:
                if c.restart_at is None:
                    c.ready = False
                    c.restart_at = now + RESTART_DELAY_SECONDS
                elif now >= c.restart_at:
                    c.restart_at = None
                    c.restarts += 1
                    try:
                        self._run(pod, obj, c, self._volumes(pod, obj))
                    except (KeyError, ValueError, OSError, urllib.error.HTTPError) as e:
                        pod.failed = f"{type(e).__name__}: {e}"
            elif c.popen is not None and now >= c.next_probe:
                self._probe(pod, c)
        self._report(pod)

    def _probe(self, pod: Pod, c: Container) -> None:
        probe = c.spec.get("readinessProbe")
        if not probe:
            c.ready = True
            return
        period = min(float(probe.get("periodSeconds", 10)), self.probe_period)
        c.next_probe = time.monotonic() + period
        http = probe.get("httpGet")
        if http is None:  # exec/tcpSocket/grpc probes are not modelled: ready once started
            c.ready = True
            return
        port = http.get("port")
        if isinstance(port, str) and not port.isdigit():
            named = {p.get("name"): p.get("containerPort") for p in c.spec.get("ports") or []}
            port = named.get(port)
        url = f"{str(http.get('scheme', 'HTTP')).lower()}://{pod.ip}:{port}{http.get('path', '/')}"
        timeout = min(float(probe.get("timeoutSeconds", 1)), 2.0)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                ok = 200 <= r.status < 400
        except (OSError, ValueError):
            ok = False
        if ok:
            c.successes, c.failures = c.successes + 1, 0
            if c.successes >= int(probe.get("successThreshold", 1)):
                c.ready = True
        else:
            c.successes, c.failures = 0, c.failures + 1
            if c.failures >= int(probe.get("failureThreshold", 3)) or not c.ready:
                c.ready = False

    def _report(self, pod: Pod) -> None:
        ready = bool(pod.containers) and all(c.ready for c in pod.containers) and not pod.failed
        statuses = []
        for c in pod.containers:
            running = c.popen is not None and c.popen.poll() is None
            state: dict[str, Any]
            if running:
                state = {"running": {"startedAt": c.started_at}}
            elif pod.failed:
                state = {"waiting": {"reason": "ErrImagePull", "message": pod.failed}}
            else:
                code = c.popen.returncode if c.popen is not None else -1
                state = {"terminated": {"exitCode": code, "reason": "Error" if code else
                                        "Completed"}}  # fmt: skip
            statuses.append({
                "name": c.name, "image": c.spec.get("image", ""), "imageID": "",
                "containerID": f"promdemo://{c.popen.pid if c.popen else 0}",
                "ready": c.ready, "started": running, "restartCount": c.restarts, "state": state,
            })  # fmt: skip
        flag = "True" if ready else "False"
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag},
            {"type": "Ready", "status": flag},
        ]
        status = {
            "phase": "Pending" if pod.failed else "Running",
            "hostIP": self.cp.node_ip, "hostIPs": [{"ip": self.cp.node_ip}],
            "podIP": pod.ip, "podIPs": [{"ip": pod.ip}], "startTime": pod.started_at,
            "containerStatuses": statuses,
        }  # fmt: skip
        if status == (pod.reported or {}).get("status") and conditions == (pod.reported or {}).get(
            "conditions"
        ):
            return
        body = {"status": {**status, "conditions": [
            {**c, "lastTransitionTime": _now()} for c in conditions]}}  # fmt: skip
        self._api_ignore_missing(
            "PATCH", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status", body,
            content_type="application/merge-patch+json",
        )  # fmt: skip
        pod.reported = {"status": status, "conditions": conditions}

    # -- terminating -------------------------------------------------------------------------

    def _signal(self, pod: Pod, sig: int) -> None:
        for c in pod.containers:
            if c.popen is not None and c.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.popen.pid, sig)

    def _terminate(self, obj: dict[str, Any], pod: Pod | None) -> None:
        meta = obj["metadata"]
        if pod is not None and pod.kill_at is None:
            grace = meta.get("deletionGracePeriodSeconds")
            pod.kill_at = time.monotonic() + float(30 if grace is None else grace)
            self._signal(pod, signal.SIGTERM)
        if pod is not None:
            alive = any(c.popen is not None and c.popen.poll() is None for c in pod.containers)
            if alive and time.monotonic() < (pod.kill_at or 0):
                return
            self._signal(pod, signal.SIGKILL)
            for c in pod.containers:
                if c.popen is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.popen.wait(timeout=5)
            self.pods.pop(pod.uid, None)
            self._teardown(pod)
        self._api_ignore_missing(
            "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
             "preconditions": {"uid": meta["uid"]}},
        )  # fmt: skip

    def _teardown(self, pod: Pod) -> None:
        self.cp.remove_pod_network(pod.netns)
