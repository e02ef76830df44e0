#!/usr/bin/env python3
"""Build the kubectl plugin's krew archive and its krew manifest (not published).

    python scripts/krew.py VERSION URL_BASE OUT_DIR
    # e.g. 0.1.0 https://github.com/promdemo/promdemo/releases/download/v0.1.0 dist

writes OUT_DIR/kubectl-promdemo.tar.gz (hack/krew/kubectl-promdemo with the
version filled in, and LICENSE; the same bytes for the same input: no
timestamps, no owners) and OUT_DIR/promdemo.yaml, the krew Plugin manifest
whose platforms point at URL_BASE/kubectl-promdemo.tar.gz with its sha256.
The release workflow runs it and attaches both files to the GitHub release.

The archive holds a launcher, not a program: it runs the plugin of a promdemo
installed with pip (Python 3.11+), which the manifest's caveats say. Publishing
it in krew-index means a pull request to kubernetes-sigs/krew-index with this
manifest (docs/helm.md says what that needs).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "hack" / "krew" / "kubectl-promdemo"
LICENSE = ROOT / "LICENSE"
ARCHIVE = "kubectl-promdemo.tar.gz"
MANIFEST = "promdemo.yaml"
HOMEPAGE = "https://github.com/promdemo/promdemo"
VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")


def archive(version: str) -> bytes:
    """The tar.gz krew downloads: the launcher (mode 0755) and LICENSE, reproducible."""
    files = [
        ("kubectl-promdemo", LAUNCHER.read_text().replace("@VERSION@", version).encode(), 0o755),
        ("LICENSE", LICENSE.read_bytes(), 0o644),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def manifest(version: str, uri: str, sha256: str) -> dict[str, Any]:
    """The krew Plugin manifest (krew.googlecontainertools.github.com/v1alpha2)."""
    install = f"pip install 'promdemo[all] @ git+{HOMEPAGE}@v{version}'"
    return {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": "promdemo"},
        "spec": {
            "version": f"v{version}",
            "homepage": HOMEPAGE,
            "shortDescription": "Diagnose PromDemos from their pods to their alerts",
            "description": (
                "promdemo's diagnosis commands for the PromDemo operator's resources:\n"
                "`kubectl promdemo doctor` follows each PromDemo from its pods to the\n"
                "Prometheus that scrapes it and its alerts, and prints the fix for the\n"
                "first broken link; `kubectl promdemo check-selection` says offline\n"
                "whether a prometheus-operator Prometheus selects a PromDemo's\n"
                "ServiceMonitor and rules; `kubectl promdemo render` prints what the\n"
                "operator would create. kubectl's --kubeconfig, --context, -n and -A apply.\n"
            ),
            "caveats": (
                "This plugin runs promdemo's Python code: it needs Python 3.11+ with\n"
                f"promdemo installed:\n  {install}\n"
                "(or PROMDEMO_PYTHON set to the Python that has it).\n"
            ),
            "platforms": [
                {
                    "selector": {
                        "matchExpressions": [
                            {"key": "os", "operator": "In", "values": ["linux", "darwin"]}
                        ]
                    },
                    "uri": uri,
                    "sha256": sha256,
                    "bin": "kubectl-promdemo",
                    "files": [
                        {"from": "kubectl-promdemo", "to": "."},
                        {"from": "LICENSE", "to": "."},
                    ],
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (description, caveats) as `|` blocks, as krew-index writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not VERSION.match(argv[0]):
        print("usage: scripts/krew.py VERSION(X.Y.Z) URL_BASE OUT_DIR", file=sys.stderr)
        return 2
    version, url_base, out = argv[0], argv[1].rstrip("/"), Path(argv[2])
    data = archive(version)
    out.mkdir(parents=True, exist_ok=True)
    (out / ARCHIVE).write_bytes(data)
    plugin = manifest(version, f"{url_base}/{ARCHIVE}", hashlib.sha256(data).hexdigest())
    (out / MANIFEST).write_text(yaml.dump(plugin, Dumper=_Dumper, sort_keys=False, width=100))
    print(f"wrote {out / ARCHIVE} and {out / MANIFEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
