"""A real Kubernetes control plane for tests and benchmarks: etcd, kube-apiserver and
kube-controller-manager built from upstream (hack/upstream/build.sh), started inside a
network namespace of its own.

    with ControlPlane() as cp:            # or cp.start() ... cp.stop()
        cp.kubectl("get", "ns")           # admin (system:masters) kubeconfig: cp.kubeconfig
        cp.request("GET", "/api/v1/namespaces/default")

The network. `start()` creates the namespace `promdemo-cp-<random>` and in it a
private /17 (`10.X.0.0/17`, X picked free among the host's routes) that is local to
the namespace (`10.X.0.0/24` is local to it): the API server listens on 10.X.0.1:6443, etcd on
10.X.0.2:2379. Every pod the kubelet stand-in (tests/support/kubelet.py) runs gets a
network namespace of its own (`add_pod_network`) with an address from 10.X.1.0
upwards, never loopback (EndpointSlice validation and the API server's proxy refuse
127.0.0.0/8), reached through a veth and a /32 route. Every link's neighbour (ARP)
entry is static (`nud permanent`, see `_static_neighbour`). A veth pair joins the control
plane's namespace to the host, with one route for the /17, so the test process
reaches the API server and the pods directly; nothing the control plane or a pod
does reaches any address outside these namespaces (they have no other interface
and no route out). There is no kube-proxy:
Service cluster IPs (10.96.0.0/24) lead nowhere; the API server's service and pod
proxies work (they dial pod IPs).

Identities. A CA is made at start-up (openssl). Client certificates: `admin`
(group system:masters) for the tests, kubectl and the kubelet stand-in, and
kube-controller-manager's own (also system:masters: a test cluster, not a hardened
one). ServiceAccount tokens are signed with a key made at start-up;
`token(namespace, name)` asks the API server for one (TokenRequest), so a process
holding it is authorized by the real RBAC authorizer (`--authorization-mode=Node,RBAC`,
admission includes OwnerReferencesPermissionEnforcement).

The audit log (`audit_log`, JSON lines, level Metadata) records every request with
its user, verb, resource and answer code.

`stop()` stops every process started here (SIGTERM, then SIGKILL), any process still
in the namespace, deletes the veth and the namespace, and the data directory
(unless PROMDEMO_KEEP_CONTROLPLANE=1, for a post-mortem). It runs even when
`start()` failed half-way.

Needs root (`ip netns`) and the binaries; `require_controlplane()` skips with the
reason (a failure under PROMDEMO_REQUIRE_TOOLS=1, as in .ci/run) when either is missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.support.upstream import find_upstream, versions

#: What kube-controller-manager runs: what turns Deployments into Pods, fills
#: EndpointSlices, garbage-collects owned objects, finishes namespace deletion, and
#: gives every namespace its default ServiceAccount and kube-root-ca.crt.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
)

ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "ServiceAccount",
    "OwnerReferencesPermissionEnforcement",
    "DefaultTolerationSeconds",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
APISERVER_PORT = 6443
ETCD_PORT = 2379
#: Bounds of start-up waits (seconds): generous for a busy 2-core machine.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


class ControlPlaneUnavailable(RuntimeError):
    """The control plane cannot run here (not root, binaries or tools missing)."""


def missing_requirements() -> str | None:
    """Why the control plane cannot start on this machine; None when it can."""
    if os.geteuid() != 0:
        return "the control plane needs root (it creates a network namespace with `ip netns`)"
    for tool in ("ip", "openssl", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for tool, binary in (
        ("etcd", "etcd"),
        ("kubernetes", "kube-apiserver"),
        ("kubernetes", "kube-controller-manager"),
    ):
        if find_upstream(tool, binary) is None:
            return (
                f"{binary} is not built: run `make controlplane` "
                f"(hack/upstream/build.sh kubernetes etcd)"
            )
    return None


def require_controlplane() -> None:
    """Skip the test (fail under PROMDEMO_REQUIRE_TOOLS=1) when the control plane cannot run."""
    import pytest  # only the pytest helpers need it: ControlPlane runs without pytest

    reason = missing_requirements()
    if reason is None:
        return
    if os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; PROMDEMO_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(reason)


def _run(argv: Sequence[str], *, timeout: float = 30.0, check: bool = True) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _kill_netns_processes(netns: str) -> None:
    """SIGKILL every process in `netns` (a namespace this module created)."""
    for pid in _run(["ip", "netns", "pids", netns], check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


#: The pods' default gateway: link-local, held by no interface; its neighbour entry in
#: each pod's namespace names the control plane's end of the pod's veth.
POD_GATEWAY = "169.254.1.1"


def _static_neighbour(netns: list[str], ip: str, dev: str, mac: str) -> None:
    """A permanent neighbour (ARP) entry: `ip` is at `mac` on `dev`.

    The kernel's IPv4 neighbour table is one for every network namespace of the host
    (at most net.ipv4.neigh.default.gc_thresh3 = 1,024 dynamic entries by default): a
    process elsewhere that talks to many on-link addresses fills it, and every
    namespace's new ARP resolution then fails ("neighbor table overflow!" in the
    kernel log: connect timeouts, failing probes). Permanent entries are neither
    counted against that limit nor evicted, and need no resolution at all.
    """
    _run(["ip", *netns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent"])


def _mac(dev: str, netns: str | None = None) -> str:
    """The MAC address of `dev` (in `netns`, or the host's namespace)."""
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "link", "show", "dev", dev]
    return str(json.loads(_run(argv))[0]["address"])


def _pod_macs(ip: str) -> tuple[str, str]:
    """Locally administered MACs for a pod's veth, from its IP: (the pod's end, the
    control plane's end). Each pair is a link of its own: a reused IP may reuse them."""
    octets = ":".join(f"{int(o):02x}" for o in ip.split("."))
    return f"02:00:{octets}", f"06:00:{octets}"


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in a network namespace of their own."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        controllers: Sequence[str] = CONTROLLERS,
        apiserver_args: Sequence[str] = (),
    ) -> None:
        tag = secrets.token_hex(3)
        self._own_workdir = workdir is None
        # Named like the network namespace; made by start(), removed by stop().
        self.workdir = Path(workdir or Path(tempfile.gettempdir()) / f"promdemo-cp-{tag}")
        self.controllers = tuple(controllers)
        self.extra_apiserver_args = tuple(apiserver_args)
        self.netns = f"promdemo-cp-{tag}"
        self._veth_host = f"pdcp{tag}h"
        self._veth_ns = f"pdcp{tag}n"
        self.subnet_octet: int | None = None
        self._processes: dict[str, _Process] = {}
        self._netns_made = False
        self._route_made = False
        self._next_ip = 0
        self._tag = tag
        self._pod_networks = 0
        # The admin's TLS context, made once per set of certificates (start() makes them):
        # the kubelet stand-in and every wait loop send requests all the time.
        self._ssl: ssl.SSLContext | None = None
        self._pod_netns: set[str] = set()
        self.started_seconds: float | None = None
        #: (began, ready) of each API server start, in seconds since the epoch.
        self.apiserver_starts: list[tuple[float, float]] = []
        self.kubernetes_version = versions()["KUBERNETES_VERSION"]

    # -- addresses ---------------------------------------------------------------------

    def _ip(self, third: int, fourth: int) -> str:
        return f"10.{self.subnet_octet}.{third}.{fourth}"

    @property
    def apiserver_ip(self) -> str:
        return self._ip(0, 1)

    @property
    def etcd_ip(self) -> str:
        return self._ip(0, 2)

    @property
    def node_ip(self) -> str:
        """The InternalIP the kubelet stand-in reports for its Node."""
        return self._ip(0, 3)

    @property
    def pod_cidr(self) -> str:
        return f"10.{self.subnet_octet}.0.0/17"

    @property
    def server(self) -> str:
        """The API server's URL (reachable from the host and inside the namespace)."""
        return f"https://{self.apiserver_ip}:{APISERVER_PORT}"

    @property
    def etcd_url(self) -> str:
        return f"http://{self.etcd_ip}:{ETCD_PORT}"

    def allocate_pod_ip(self) -> str:
        """A new pod address (never handed out twice in one control plane's life)."""
        self._next_ip += 1
        n = 256 + self._next_ip  # from 10.X.1.1 upwards
        third, fourth = divmod(n, 256)
        if third >= 127:
            raise RuntimeError("out of pod addresses")
        if fourth == 0:
            return self.allocate_pod_ip()
        return self._ip(third, fourth)

    # -- files -------------------------------------------------------------------------

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Network, certificates, etcd, API server (ready), controller manager (serving)."""
        reason = missing_requirements()
        if reason is not None:
            raise ControlPlaneUnavailable(reason)
        began = time.monotonic()
        try:
            (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
            self._make_network()
            self._ssl = None
            self._make_pki()
            self._write_kubeconfigs()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._wait_default_serviceaccount()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop everything started here, then remove the namespace, veth and files."""
        for name in reversed(list(self._processes)):
            self._stop_process(name)
        for name in list(self._pod_netns):
            self.remove_pod_network(name)
        if self._netns_made:
            # Whatever else still runs in our namespace was started through it.
            _kill_netns_processes(self.netns)
            _run(["ip", "link", "del", self._veth_host], check=False)
            _run(["ip", "netns", "del", self.netns], check=False)
            self._netns_made = False
            self._route_made = False
        if self._own_workdir and os.environ.get("PROMDEMO_KEEP_CONTROLPLANE") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- network -----------------------------------------------------------------------

    def _make_network(self) -> None:
        _run(["ip", "netns", "add", self.netns])
        self._netns_made = True
        ns = ["ip", "-n", self.netns]
        _run([*ns, "link", "set", "lo", "up"])
        _run(["ip", "link", "add", self._veth_host, "type", "veth", "peer", "name",
              self._veth_ns, "netns", self.netns])  # fmt: skip
        routes = _run(["ip", "-4", "route", "show"]) + _run(["ip", "-4", "addr", "show"])
        candidates = [x for x in range(200, 250) if f"10.{x}." not in routes]
        if not candidates:
            raise RuntimeError("no free 10.X.0.0/16 range among 10.200-10.249 on this host")
        last_error = ""
        for octet in secrets.SystemRandom().sample(candidates, min(len(candidates), 8)):
            self.subnet_octet = octet
            _run(["ip", "addr", "flush", "dev", self._veth_host], check=False)
            _run(["ip", "addr", "add", f"{self._ip(255, 1)}/30", "dev", self._veth_host])
            _run(["ip", "link", "set", self._veth_host, "up"])
            try:
                _run(["ip", "route", "add", self.pod_cidr, "via", self._ip(255, 2)])
            except RuntimeError as e:  # another control plane took it meanwhile
                last_error = str(e)
                continue
            self._route_made = True
            break
        if not self._route_made:
            raise RuntimeError(f"could not claim a free 10.X.0.0/17 route: {last_error}")
        _run([*ns, "addr", "add", f"{self._ip(255, 2)}/30", "dev", self._veth_ns])
        _run([*ns, "link", "set", self._veth_ns, "up"])
        _static_neighbour([], self._ip(255, 2), self._veth_host, _mac(self._veth_ns, self.netns))
        _static_neighbour(["-n", self.netns], self._ip(255, 1), self._veth_ns,
                          _mac(self._veth_host))  # fmt: skip
        # The control plane's own addresses (10.X.0.0/24) are local to the namespace; each
        # pod has a namespace of its own behind a veth and a /32 route (add_pod_network).
        _run([*ns, "route", "add", "local", self._ip(0, 0) + "/24", "dev", "lo"])
        _run(["ip", "netns", "exec", self.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def add_pod_network(self, ip: str) -> str:
        """A network namespace for one pod, with `ip` as its only address; its name.

        The pod's `eth0` is one end of a veth pair whose other end is in the control
        plane's namespace (a /32 route to `ip`; the pod's default route goes through it):
        the pod reaches the API server, the other pods and the host's end of the veth,
        nothing else. Processes in it may bind 0.0.0.0 as in a real pod.
        """
        self._pod_networks += 1
        n = self._pod_networks
        name = f"{self.netns}-pod{n}"
        veth = f"pdp{self._tag}{n:x}"
        _run(["ip", "netns", "add", name])
        self._pod_netns.add(name)
        pod = ["ip", "-n", name]
        cluster = ["ip", "-n", self.netns]
        _run([*pod, "link", "set", "lo", "up"])
        # Fixed MACs: each side's neighbour entry for the other is static (below).
        pod_mac, cluster_mac = _pod_macs(ip)
        _run([*cluster, "link", "add", veth, "address", cluster_mac, "type", "veth", "peer",
              "name", "eth0", "address", pod_mac, "netns", name])  # fmt: skip
        _run([*pod, "addr", "add", f"{ip}/32", "dev", "eth0"])
        _run([*pod, "link", "set", "eth0", "up"])
        # One next hop for everything (a link-local address nobody holds, as Calico's
        # 169.254.1.1), so the pod needs one neighbour entry, not one per address it talks to.
        _static_neighbour(["-n", name], POD_GATEWAY, "eth0", cluster_mac)
        _run([*pod, "route", "add", "default", "via", POD_GATEWAY, "dev", "eth0", "onlink"])
        _run([*cluster, "link", "set", veth, "up"])
        # `replace`: an address handed out again (Kubelet.pin_next_ip) may still have the old
        # pod's route for a moment, until the kernel has destroyed that pod's veth.
        _run([*cluster, "route", "replace", f"{ip}/32", "dev", veth])
        _static_neighbour(["-n", self.netns], ip, veth, pod_mac)
        return name

    def remove_pod_network(self, name: str) -> None:
        """Stop what still runs in a pod's namespace and delete it (its veth goes with it)."""
        if name not in self._pod_netns:
            return
        _kill_netns_processes(name)
        _run(["ip", "netns", "del", name], check=False)
        self._pod_netns.discard(name)

    def netns_exec(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside the control plane's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    # -- certificates ------------------------------------------------------------------

    def _openssl(self, *args: str) -> None:
        _run(["openssl", *args])

    def _key(self, name: str) -> Path:
        path = self.pki / f"{name}.key"
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(path))  # fmt: skip
        return path

    def _cert(self, name: str, subject: str, extensions: str) -> None:
        key = self._key(name)
        csr = self.pki / f"{name}.csr"
        ext = self.pki / f"{name}.ext"
        ext.write_text(extensions)
        self._openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert),
            "-CAkey", str(self.pki / "ca.key"), "-set_serial", str(secrets.randbits(63)),
            "-days", "7", "-extfile", str(ext), "-out", str(self.pki / f"{name}.crt"),
        )  # fmt: skip

    def _make_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_key = self._key("ca")
        self._openssl(
            "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=promdemo-test-ca",
            "-days", "7", "-out", str(self.ca_cert),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip
        client = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        client += "extendedKeyUsage=clientAuth\n"
        sans = ",".join(
            [f"IP:{self.apiserver_ip}", "IP:10.96.0.1", "IP:127.0.0.1", "DNS:localhost",
             "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
             "DNS:kubernetes.default.svc.cluster.local"]
        )  # fmt: skip
        self._cert(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
        )
        self._cert("admin", "/O=system:masters/CN=promdemo-test-admin", client)
        self._cert("controller-manager", "/O=system:masters/CN=system:kube-controller-manager",
                   client)  # fmt: skip
        self._cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver", client)
        sa_key = self.pki / "sa.key"
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", str(sa_key))  # fmt: skip
        self._openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(self.pki / "sa.pub"))

    def _kubeconfig_for(self, user: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "promdemo-test", "cluster": {
                "server": self.server, "certificate-authority": str(self.ca_cert)}}],
            "users": [{"name": user, "user": {
                "client-certificate": str(self.pki / f"{user}.crt"),
                "client-key": str(self.pki / f"{user}.key")}}],
            "contexts": [{"name": "promdemo-test", "context": {
                "cluster": "promdemo-test", "user": user, "namespace": "default"}}],
            "current-context": "promdemo-test",
        }  # fmt: skip

    def _write_kubeconfigs(self) -> None:
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig_for("admin")))
        (self.workdir / "controller-manager.kubeconfig").write_text(
            yaml.safe_dump(self._kubeconfig_for("controller-manager"))
        )

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig at `path` that authenticates with a bearer `token`."""
        config = self._kubeconfig_for("admin")
        config["users"] = [{"name": "admin", "user": {"token": token}}]
        path.write_text(yaml.safe_dump(config))
        return path

    # -- processes -------------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        log = self.log_path(name)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.netns_exec(argv), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self._processes[name] = _Process(name, popen, log)

    def _stop_process(self, name: str) -> None:
        proc = self._processes.pop(name, None)
        if proc is None or proc.popen.poll() is not None:
            return
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=STOP_TIMEOUT)

    def _check_alive(self, name: str) -> None:
        proc = self._processes[name]
        if proc.popen.poll() is not None:
            tail = proc.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{tail}")

    def _start_etcd(self) -> None:
        etcd = find_upstream("etcd", "etcd")
        data = self.workdir / "etcd"
        peer = f"http://127.0.0.1:{ETCD_PORT + 1}"  # inside the namespace: its own loopback
        self._spawn("etcd", [
            str(etcd), "--name", "promdemo", "--data-dir", str(data),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"promdemo={peer}", "--unsafe-no-fsync",
            "--log-level", "warn",
        ])  # fmt: skip
        self._wait("etcd", lambda: self._etcd_healthy())

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def apiserver_argv(self) -> list[str]:
        apiserver = find_upstream("kubernetes", "kube-apiserver")
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}],
        }))  # fmt: skip
        pki = self.pki
        return [
            str(apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.apiserver_ip}",
            f"--advertise-address={self.apiserver_ip}",
            f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_cert}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--allow-privileged=false",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]

    def _start_apiserver(self) -> None:
        began = time.time()
        self._spawn("kube-apiserver", self.apiserver_argv())
        self._wait("kube-apiserver", lambda: self._ok("/readyz"))
        self.apiserver_starts.append((began, time.time()))

    def starting(self, timestamp: str, slack: float = 1.0) -> bool:
        """True when an audit timestamp (RFC 3339) falls while an API server was starting.

        Until it is ready, a starting kube-apiserver already answers, and its RBAC
        authorizer, whose caches are still empty, refuses (403) even granted requests.
        """
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
        return any(a - slack <= when <= b + slack for a, b in self.apiserver_starts)

    def _start_controller_manager(self) -> None:
        kcm = find_upstream("kubernetes", "kube-controller-manager")
        self._spawn("kube-controller-manager", [
            str(kcm),
            f"--kubeconfig={self.workdir / 'controller-manager.kubeconfig'}",
            f"--controllers={','.join(self.controllers)}",
            "--leader-elect=false",
            f"--root-ca-file={self.ca_cert}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--bind-address=127.0.0.1",  # inside the namespace
            "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ])  # fmt: skip

    def _wait_default_serviceaccount(self) -> None:
        def ready() -> bool:
            self._check_alive("kube-controller-manager")
            return self._ok("/api/v1/namespaces/default/serviceaccounts/default")

        self._wait("kube-controller-manager", ready)

    def restart_apiserver(self, before_start: Any = None) -> None:
        """Stop the API server, run `before_start()` (e.g. edit etcd), start it, wait ready."""
        self._stop_process("kube-apiserver")
        if before_start is not None:
            before_start()
        self._start_apiserver()

    def restart_etcd(self, down: float = 0.0) -> None:
        """Stop etcd (SIGTERM), leave it down `down` seconds, start it again on the same data
        directory (every object kept) and wait until it answers; the API server stays up."""
        self._stop_process("etcd")
        time.sleep(down)
        self._start_etcd()

    def _wait(self, name: str, ready: Any, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            if ready():
                return
            time.sleep(0.25)
        tail = self.log_path(name).read_text(errors="replace")[-3000:]
        raise TimeoutError(f"{name} not ready within {timeout:.0f}s:\n{tail}")

    # -- talking to it -----------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            self._ssl = context
        return self._ssl

    def request_raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> bytes:
        """One API request as the admin; the answer's bytes (HTTPError on 4xx/5xx)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
            return r.read()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One API request as the admin; the decoded JSON answer (HTTPError on 4xx/5xx)."""
        raw = self.request_raw(method, path, body, content_type=content_type, timeout=timeout)
        return json.loads(raw) if raw else {}

    def _ok(self, path: str) -> bool:
        try:
            self.request_raw("GET", path, timeout=5)
        except OSError:
            return False
        return True

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None on 404."""
        try:
            return self.request("GET", path)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as a user would run it, with the admin kubeconfig (or `kubeconfig`)."""
        argv = ["kubectl", f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def token(self, namespace: str, service_account: str, *, seconds: int = 3600) -> str:
        """A token the API server issues for the ServiceAccount (TokenRequest)."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": seconds}},
        )  # fmt: skip
        return str(answer["status"]["token"])

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """Every audit event written so far (JSON lines)."""
        if not self.audit_log.exists():
            return
        with self.audit_log.open() as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)

    # -- etcd, for forcing a watch gap ---------------------------------------------------

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def etcd_delete(self, key: str) -> int:
        """Delete `key` in etcd behind the API server's back; how many keys went."""
        encoded = base64.b64encode(key.encode()).decode()
        return int(self._etcd("/v3/kv/deleterange", {"key": encoded}).get("deleted", 0))

    def etcd_compact(self, revision: int | None = None) -> int:
        """Compact etcd at `revision` (default: its current one); a watch resuming from an
        older resourceVersion, served from etcd, answers 410 Gone. The revision."""
        if revision is None:
            encoded = base64.b64encode(b"/registry").decode()
            revision = int(self._etcd("/v3/kv/range", {"key": encoded})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision


def main(argv: Sequence[str] | None = None) -> int:
    """`python3 -m tests.support.controlplane [--no-kubelet]` (as root): start the control
    plane (and the kubelet stand-in), print how to reach it, stop all of it on Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m tests.support.controlplane")
    parser.add_argument("--no-kubelet", action="store_true", help="no node: pods stay Pending")
    args = parser.parse_args(argv)
    reason = missing_requirements()
    if reason is not None:
        print(f"cannot start the control plane: {reason}", file=sys.stderr)
        return 2
    from tests.support.kubelet import Kubelet  # imports this module: imported late

    # Ctrl-C and SIGTERM are waited for, not raised in the middle of a start.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with ControlPlane() as cp:
        kubelet = None if args.no_kubelet else Kubelet(cp).start()
        try:
            print(f"control plane (Kubernetes {cp.kubernetes_version}) up in "
                  f"{cp.started_seconds:.1f} s; network namespace {cp.netns}")  # fmt: skip
            print(f"  export KUBECONFIG={cp.kubeconfig}")
            print(f"  audit log {cp.audit_log}; component logs {cp.workdir / 'logs'}")
            print("Ctrl-C stops it and removes everything.", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            if kubelet is not None:
                kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
