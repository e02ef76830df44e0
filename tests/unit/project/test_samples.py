"""The one place that judges every sample of manifests/samples, by the three judges a user
meets: the API server (the CRD's schema and CEL rules, as tests/support/api_schemas.py
checks them), the operator (`parse_spec`, whose message
becomes the SpecValid condition) and `promdemo render -f FILE`.

- `manifests/samples/*.yaml` and the prod overlay's PromDemo: stored, read, rendered
  into five valid children.
- `invalid/`: one example of each kind of rule the schema enforces: the API server
  refuses it (400 for an unknown field, else 422) with one cause under `spec`; the
  operator and `promdemo render` refuse it too, naming that field.
- `invalid-spec/`: what only the operator catches: the API server stores it; the
  operator refuses it and `promdemo render` exits 2 with the same one line.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from promdemo_operator.cli import main as cli
from promdemo_operator.core.spec import DEFAULTS, SpecError, parse_spec
from tests.support.api_schemas import Kind, Rejected, check, crd_kinds

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"
VALID = [*sorted(SAMPLES.glob("*.yaml")), ROOT / "manifests/overlays/prod/promdemo.yaml"]
INVALID = sorted((SAMPLES / "invalid").glob("*.yaml"))
OPERATOR_ONLY = sorted((SAMPLES / "invalid-spec").glob("*.yaml"))


def sample_id(path: Path) -> str:
    return path.relative_to(ROOT / "manifests").as_posix()


def load_doc(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return doc


@functools.cache
def promdemo_kind() -> Kind:
    (kind,) = [k for k in crd_kinds() if k.kind == "PromDemo"]
    return kind


def api_server(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` as the API server stores it; Rejected when it refuses it."""
    return check(promdemo_kind(), doc["apiVersion"], "PromDemo", "promdemos", doc)


def render(path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str, str]:
    """`promdemo render -f PATH OPTIONS`: an invalid file is rendered as a user types it,
    without options; a valid one with a fixed token."""
    code = cli.main(["render", "-f", str(path), *options])
    out, err = capsys.readouterr()
    return code, out, err


def test_there_are_samples_of_each_kind():
    assert {p.name for p in VALID} >= {"minimal.yaml", "full.yaml", "promdemo.yaml"}
    assert len(INVALID) >= 8
    assert len(OPERATOR_ONLY) >= 3


def test_minimal_sets_nothing_and_full_sets_every_field():
    assert "spec" not in load_doc(SAMPLES / "minimal.yaml")

    def leaves(d: Any, prefix: str = "") -> set[str]:
        if isinstance(d, dict) and d and prefix != ".monitoring.labels":
            return set().union(*(leaves(v, f"{prefix}.{k}") for k, v in d.items()))
        return {prefix}

    assert leaves(load_doc(SAMPLES / "full.yaml")["spec"]) == leaves(DEFAULTS)


@pytest.mark.parametrize("path", VALID, ids=sample_id)
def test_a_valid_sample_is_stored_read_and_rendered(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_doc(path)
    assert (doc["apiVersion"], doc["kind"]) == ("promdemo.dev/v1alpha1", "PromDemo")
    stored = api_server(doc)
    # The operator reads what the API server stored as it reads the file.
    assert parse_spec(stored["spec"]) == parse_spec(doc.get("spec"))

    code, out, err = render(path, capsys, "--token", "t0k3n")
    assert (code, err) == (0, "")
    children = [c for c in yaml.safe_load_all(out) if c]
    assert [c["kind"] for c in children] == [
        "Secret", "Deployment", "Service", "ServiceMonitor", "PrometheusRule",
    ]  # fmt: skip
    for child in children:
        if child["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(child, "1.30", strict=True)


@pytest.mark.parametrize("path", INVALID, ids=sample_id)
def test_an_invalid_sample_is_refused_by_all_three(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_doc(path)
    with pytest.raises(Rejected) as refused:
        api_server(doc)
    # Each file is wrong in one way: one cause, under spec.
    (cause,) = refused.value.causes
    assert cause.field == "spec" or cause.field.startswith("spec."), cause
    assert refused.value.code == (400 if cause.reason == "FieldValueUnknown" else 422)

    with pytest.raises(SpecError) as caught:
        parse_spec(doc["spec"])
    # Both name the same field, or one a field inside the other's (the window inside
    # spec.monitoring, whose CEL rule compares it with scrapeInterval; a label's value
    # inside spec.monitoring.labels).
    blamed, named = f"{cause.field}.", f"{caught.value.field}."
    assert named.startswith(blamed) or blamed.startswith(named), (cause, caught.value)

    code, out, err = render(path, capsys)
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    assert line == f"promdemo render: {path}: PromDemo {doc['metadata']['name']!r}: " + str(
        caught.value
    )


@pytest.mark.parametrize("path", OPERATOR_ONLY, ids=sample_id)
def test_what_only_the_operator_catches_is_stored_but_refused(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = load_doc(path)
    api_server(doc)
    with pytest.raises(SpecError) as caught:
        parse_spec(doc["spec"])
    assert "\n" not in caught.value.message

    code, out, err = render(path, capsys)
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    assert line.endswith(f": {caught.value.message}"), line
