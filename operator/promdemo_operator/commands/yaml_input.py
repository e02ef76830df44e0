"""The YAML files the commands read (`-f FILE`, `-` for stdin), with one-line errors."""

from __future__ import annotations

from typing import Any, TextIO

import yaml


class InputError(Exception):
    """One line for stderr; the command exits with status 2 (a usage error)."""


def read_documents(filename: str, stdin: TextIO) -> list[Any]:
    """Every non-empty YAML document of `filename` (`-`: `stdin`)."""
    try:
        if filename == "-":
            text = stdin.read()
        else:
            with open(filename, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise InputError(f"{filename}: {exc.strerror or exc}") from exc
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InputError(f"{filename}: not valid YAML{line}: {problem}") from exc
