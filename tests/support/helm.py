"""helm (v4, built from its Go module by hack/upstream/build.sh) for the tests.

`Helm` runs the pinned binary with its own cache, config and data directories
under a test's tmp_path, so that nothing reads or writes the user's ~/.config/helm
and no repository is ever contacted. The chart is charts/promdemo.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.upstream import require_upstream

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "promdemo"


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path
    kubeconfig: Path | None = None

    @classmethod
    def require(cls, home: Path, kubeconfig: Path | None = None) -> Helm:
        """The built helm (skip, or fail in CI, when it is not built)."""
        return cls(require_upstream("helm", "helm"), home, kubeconfig)

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            # No cluster unless one is given: nothing falls back to ~/.kube/config.
            "KUBECONFIG": str(self.kubeconfig or self.home / "no-kubeconfig"),
        }
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 120) -> str:
        """stdout of `helm ARGS`, which must succeed."""
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def template(self, *args: str, chart: Path | str = CHART) -> list[dict[str, Any]]:
        """The objects `helm template promdemo CHART -n promdemo-system ARGS` renders."""
        text = self.ok("template", "promdemo", str(chart), "-n", "promdemo-system", *args)
        return [d for d in yaml.safe_load_all(text) if d]
