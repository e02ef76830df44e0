"""docs/img: the pictures of the lessons are those the current screenshot script drew.

scripts/lessons_screenshots.py runs `promdemo local --lessons`, a real Prometheus
and headless Chromium, and lists what it drew in docs/img/manifest.json. Pixels
differ from run to run (the latencies are random), so this checks provenance,
not pixels: the manifest was written by the script as it is now, it covers every
lesson query, each image is the PNG it lists, and both pages show each image.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import sys
from pathlib import Path
from types import ModuleType

from promdemo_operator.cli.lessons import LESSONS

ROOT = Path(__file__).resolve().parents[3]
IMG = ROOT / "docs" / "img"
SCRIPT = ROOT / "scripts" / "lessons_screenshots.py"
DOCS = [ROOT / "docs" / "lessons.md", ROOT / "docs" / "lessons.zh.md"]
STALE = "docs/img is stale: run python scripts/lessons_screenshots.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lessons_screenshots", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict:
    return json.loads((IMG / "manifest.json").read_text())


def test_the_manifest_was_written_by_the_script_as_it_is_now() -> None:
    manifest = _manifest()
    assert manifest["script"] == "scripts/lessons_screenshots.py"
    assert manifest["script_sha256"] == hashlib.sha256(SCRIPT.read_bytes()).hexdigest(), STALE


def test_one_image_per_lesson_query_in_order() -> None:
    images = _manifest()["images"]
    assert [i["query"] for i in images] == [q.expr for q in LESSONS], STALE
    assert [i["lesson"] for i in images] == [q.lesson for q in LESSONS]
    assert [i["file"] for i in images] == _script().image_names()
    table = _script().TABLE_PICTURES
    assert [i["tab"] for i in images] == ["table" if q.expr in table else "graph" for q in LESSONS]


def test_each_image_is_the_png_the_manifest_lists() -> None:
    manifest = _manifest()
    width, height = manifest["window"]
    for image in manifest["images"]:
        data = (IMG / image["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["sha256"], image["file"]
        assert data[:8] == b"\x89PNG\r\n\x1a\n", image["file"]
        # IHDR: the screenshot has the window's size
        assert struct.unpack(">II", data[16:24]) == (width, height), image["file"]
    listed = {i["file"] for i in manifest["images"]} | {"manifest.json"}
    assert {p.name for p in IMG.iterdir()} == listed, "an image no run of the script drew"


def test_both_pages_show_every_image() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for image in _manifest()["images"]:
            assert f"](img/{image['file']})" in text, f"{doc.name} does not show {image['file']}"


def test_chromium_runs_for_a_closed_network() -> None:
    flags = _script().CHROMIUM_FLAGS
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ):
        assert flag in flags
