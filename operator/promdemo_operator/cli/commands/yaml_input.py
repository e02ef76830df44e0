"""The YAML files the commands read (`-f FILE`, `-` for stdin), with one-line errors.

Bounded, so that no file can make a command run long or take much memory:
at most `MAX_INPUT_BYTES` of strict UTF-8, nesting at most `MAX_DEPTH` deep,
and aliases only while the document they make stays under `MAX_EXPANDED_NODES`
nodes once expanded. PyYAML shares an aliased node rather than copying it, so
a "billion laughs" file parses into a few objects; it is what the commands do
with them afterwards (print a name, match a selector) that expands them: nine
levels of nine aliases made `promdemo render` take 27 s and 2.2 GB.
"""

from __future__ import annotations

from typing import Any, BinaryIO, TextIO

import yaml

# A PromDemo, a Prometheus or a ServiceMonitor is a few KiB.
MAX_INPUT_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000


class InputError(Exception):
    """One line for stderr; the command exits with status 2 (a usage error)."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_DEPTH while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.promdemo_depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.promdemo_depth += 1
        try:
            if self.promdemo_depth > MAX_DEPTH:
                raise InputError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.promdemo_depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is expanded (an alias is a shared node)."""
    sizes: dict[int, int] = {}
    # Children before parents, without recursion (the depth is bounded, but be plain).
    order: list[yaml.Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = -1  # seen
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
        if sizes[id(node)] > MAX_EXPANDED_NODES:
            return sizes[id(node)]
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _read(filename: str, stdin: TextIO) -> str:
    """The file's text: at most MAX_INPUT_BYTES, strict UTF-8."""
    try:
        if filename == "-":
            source: BinaryIO | None = getattr(stdin, "buffer", None)
            raw: bytes | str = (
                source.read(MAX_INPUT_BYTES + 1)
                if source is not None
                else stdin.read(MAX_INPUT_BYTES + 1)
            )
        else:
            with open(filename, "rb") as handle:
                raw = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{filename}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise InputError(f"{filename}: not UTF-8 text") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(f"{filename}: larger than {MAX_INPUT_BYTES // 1024} KiB")
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{filename}: not UTF-8 text (byte {exc.start})") from None


def read_documents(filename: str, stdin: TextIO) -> list[Any]:
    """Every non-empty YAML document of `filename` (`-`: `stdin`)."""
    text = _read(filename, stdin)
    loader = _BoundedLoader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if _expanded_size(node) > MAX_EXPANDED_NODES:
                raise InputError(
                    f"{filename}: its aliases expand to more than {MAX_EXPANDED_NODES} nodes"
                )
            document = loader.construct_document(node)
            if document is not None:
                documents.append(document)
    except InputError as exc:
        message = str(exc)
        raise InputError(
            message if message.startswith(filename) else f"{filename}: {message}"
        ) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InputError(f"{filename}: not valid YAML{line}: {problem}") from exc
    finally:
        loader.dispose()
    return documents
