"""`promdemo render`, through the installed console script."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.console import promdemo

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "manifests" / "samples"


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_the_token_given_is_the_secrets():
    """Each sample's five children: tests/unit/project/test_samples.py."""
    result = promdemo("render", "-f", str(SAMPLES / "minimal.yaml"), "--token", "t0k3n")
    assert result.returncode == 0, result.stderr
    (secret,) = [c for c in docs_of(result.stdout) if c["kind"] == "Secret"]
    assert base64.b64decode(secret["data"]["token"]).decode() == "t0k3n"


def test_render_from_stdin_and_namespace_option():
    text = (SAMPLES / "minimal.yaml").read_text()
    result = promdemo("render", "-f", "-", "--token", "x", "-n", "shop-ns", stdin=text)
    assert result.returncode == 0, result.stderr
    for child in docs_of(result.stdout):
        assert child["metadata"]["namespace"] == "shop-ns"
    rule = docs_of(result.stdout)[-1]
    assert 'namespace="shop-ns"' in yaml.safe_dump(rule)


def test_namespace_defaults_to_default_and_the_files_namespace_wins():
    result = promdemo("render", "-f", str(SAMPLES / "minimal.yaml"), "--token", "x")
    assert {c["metadata"]["namespace"] for c in docs_of(result.stdout)} == {"default"}
    prod = ROOT / "manifests/overlays/prod/promdemo.yaml"
    result = promdemo("render", "-f", str(prod), "--token", "x", "-n", "ignored")
    assert {c["metadata"]["namespace"] for c in docs_of(result.stdout)} == {"monitoring"}


def test_owner_uid_adds_owner_references():
    result = promdemo(
        "render", "-f", str(SAMPLES / "minimal.yaml"), "--token", "x", "--owner-uid", "u-1"
    )
    for child in docs_of(result.stdout):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == "u-1"
        assert owner["controller"] is True


def test_without_token_a_new_one_is_generated_and_noted_on_stderr():
    first = promdemo("render", "-f", str(SAMPLES / "minimal.yaml"))
    second = promdemo("render", "-f", str(SAMPLES / "minimal.yaml"))
    assert first.returncode == 0
    assert len(first.stderr.strip().splitlines()) == 1
    assert "--token" in first.stderr
    token_a = docs_of(first.stdout)[0]["data"]["token"]
    token_b = docs_of(second.stdout)[0]["data"]["token"]
    assert token_a != token_b
    assert docs_of(first.stdout)[1:] == docs_of(second.stdout)[1:]


def test_rules_file():
    result = promdemo("render", "-f", str(SAMPLES / "full.yaml"), "--rules-file")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (doc,) = docs_of(result.stdout)
    assert set(doc) == {"groups"}
    text = yaml.safe_dump(doc)
    assert 'job="promdemo"' in text
    assert "namespace=" not in text
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert {a["labels"]["promdemo"] for a in alerts} == {"shop-full"}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("a: [", "not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no PromDemo"),
        ("apiVersion: promdemo.dev/v2\nkind: PromDemo\nmetadata: {name: x}\n", "apiVersion"),
        ("- 1\n- 2\n", "must be an object"),
        ("apiVersion: promdemo.dev/v1alpha1\nkind: PromDemo\nmetadata: {name: Shop}\n", "name"),
    ],
)
def test_bad_files_exit_2_with_one_line(content: str, needle: str, tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = promdemo("render", "-f", str(path), "--token", "x")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr


def test_missing_file_exits_2(tmp_path: Path):
    result = promdemo("render", "-f", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_several_promdemos_in_one_file(tmp_path: Path):
    path = tmp_path / "two.yaml"
    path.write_text(
        (SAMPLES / "minimal.yaml").read_text() + "---\n" + (SAMPLES / "full.yaml").read_text()
    )
    result = promdemo("render", "-f", str(path), "--token", "x")
    assert result.returncode == 0, result.stderr
    assert len(docs_of(result.stdout)) == 10
    rules = promdemo("render", "-f", str(path), "--rules-file")
    assert rules.returncode == 2
    assert "exactly one" in rules.stderr
