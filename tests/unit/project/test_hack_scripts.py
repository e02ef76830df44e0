"""hack/*.sh and the Makefile's kind targets, read statically (nothing is run).

- Every tool a script runs (not a shell builtin, not coreutils, not a function of
  hack/lib.sh) is checked with `need` on an earlier line of that script, so a
  missing tool stops the script before it changes anything.
- docs/kind.md lists every such tool under "What you need".
- `make kind-up image kind-load deploy demo` needs docker, kind, kubectl and helm
  on the host, and nothing else (no Python, no promdemo, no curl).
- Each kind target of the Makefile runs one hack/ script, so the rules above
  cover it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.api_schemas import KUBERNETES_VERSION

ROOT = Path(__file__).resolve().parents[3]
HACK = ROOT / "hack"
SCRIPTS = sorted(p for p in HACK.glob("*.sh") if p.name != "lib.sh")

#: Always there with bash on Linux and macOS: not checked with `need`.
SHELL = {
    ".", ":", "[", "[[", "cd", "command", "echo", "exit", "export", "false", "local",
    "printf", "read", "return", "set", "shift", "source", "test", "trap", "true",
    "wait", "kill", "exec", "break", "continue",
    "cat", "cp", "cut", "dirname", "grep", "head", "mkdir", "mktemp", "mv", "od",
    "rm", "sed", "seq", "sleep", "sort", "tail", "tee", "tr", "wc", "awk",
}  # fmt: skip
KEYWORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
            "case", "esac", "in", "!", "{", "}", "function"}  # fmt: skip
#: hack/lib.sh's functions, and the tool each one runs.
LIB_FUNCTIONS = {"say": None, "die": None, "need": None, "kc": "kubectl",
                 "kustomize_with_image": "kubectl"}  # fmt: skip
SEPARATORS = {";", ";;", "&&", "||", "|", "&", "(", ")"}
#: What the kind path may require on the host.
HOST_TOOLS = {"docker", "kind", "kubectl", "helm"}
KIND_TARGETS = ["kind-up", "image", "kind-load", "deploy", "demo"]
ALL_KIND_TARGETS = [*KIND_TARGETS, "undeploy", "kind-logs", "kind-down", "install.yaml"]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) with continuations joined, comments and here-documents removed."""
    lines: list[tuple[int, str]] = []
    heredoc_end: str | None = None
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        line = raw if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        match = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if match:
            heredoc_end = match[1]
        lines.append((start, line))
    return lines


REDIRECTS = {">", ">>", "<", "<<", ">&", "<&", "&>", ">|"}


def substitutions(line: str) -> tuple[str, list[str]]:
    """`line` with each `$( ... )` replaced by a word, and the texts it held."""
    inner: list[str] = []
    out = ""
    i = 0
    while i < len(line):
        if line.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(line) and depth:
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
            inner.append(line[i + 2 : j - 1])
            out += "SUBSTITUTION"
            i = j
        else:
            out += line[i]
            i += 1
    return out, inner


def commands(line: str) -> list[str]:
    """The command words of one logical shell line, those of `$( ... )` included."""
    line, inner = substitutions(line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.wordchars += "$-./:=@{}*"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not our scripts
        pytest.fail(f"cannot tokenize: {line}")
    found = []
    at_command = True
    skip_words = False
    skip_next = False
    for i, token in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if skip_next:
            skip_next = False
            continue
        if token in REDIRECTS:
            skip_next = True  # the file or descriptor it redirects to
            continue
        if token.isdigit() and nxt in REDIRECTS:
            continue  # the descriptor of `2>&1`
        if token in SEPARATORS:
            at_command, skip_words = True, False
            continue
        if skip_words:
            continue
        if not at_command:
            if token in ("then", "do", "else", "elif"):
                at_command = True
            continue
        if token in ("for", "case"):
            skip_words = True  # `for x in ...` / `case word in`: no command words
            continue
        if token in KEYWORDS:
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
            continue  # an assignment before the command
        if nxt == ")":
            continue  # a case pattern
        found.append(token)
        at_command = False
    for text in inner:
        found += commands(text)
    return found


def defined_functions(text: str) -> set[str]:
    return set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{", text, re.MULTILINE))


def tools_and_needs(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """{tool: first line it runs on}, {tool: first line `need` checks it on}."""
    text = path.read_text()
    local = defined_functions(text)
    used: dict[str, int] = {}
    needed: dict[str, int] = {}
    for number, line in logical_lines(text):
        words = commands(line)
        if "need" in words:
            args = shlex.split(line.split("need", 1)[1].split(";")[0])
            for tool in args:
                needed.setdefault(tool, number)
        for word in words:
            if word.startswith("hack/") or word in local or word in SHELL:
                continue
            tool = LIB_FUNCTIONS.get(word, word) if word in LIB_FUNCTIONS else word
            if tool is not None:
                used.setdefault(tool, number)
    return used, needed


def documented_tools() -> set[str]:
    text = (ROOT / "docs" / "kind.md").read_text()
    section = text.split("## What you need", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- \*\*([a-z]+)\*\*", section, re.MULTILINE))


def make_recipes() -> dict[str, list[str]]:
    recipes: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+):", line)
        if match:
            current = match[1]
            recipes[current] = []
        elif line.startswith("\t") and current:
            recipes[current].append(line.strip())
        elif not line.strip():
            current = None
    return recipes


def scripts_of(target: str, recipes: dict[str, list[str]]) -> list[Path]:
    return [ROOT / line.split()[0] for line in recipes[target] if line.startswith("hack/")]


def called_scripts(path: Path) -> list[Path]:
    found = []
    for _, line in logical_lines(path.read_text()):
        found += [ROOT / w for w in commands(line) if w.startswith("hack/")]
    return found


# --------------------------------------------------------------------------- the parser


def test_the_parser_finds_commands_and_skips_what_is_not_one() -> None:
    line = 'x="$(head -c 4 /dev/urandom | od)" && kc get pd || die "no"; for i in $(seq 1 3); do sleep 1; done'  # noqa: E501
    assert sorted(commands(line)) == ["die", "head", "kc", "od", "seq", "sleep"]
    assert commands("  crds)") == []
    assert commands('if [ "$a" = b ]; then need helm; fi') == ["[", "need"]
    assert commands('{ echo a; } >"$out.tmp" 2>&1') == ["echo"]
    text = "cat >f <<YAML\nhelm: not a command\nYAML\ndocker info \\\n  --format x\n"
    assert [" ".join(line.split()) for _, line in logical_lines(text)] == [
        "cat >f <<YAML",
        "docker info --format x",
    ]


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_tool_is_checked_with_need_before_it_runs(script: Path) -> None:
    used, needed = tools_and_needs(script)
    for tool, line in used.items():
        assert tool in needed, f"{script.name}:{line} runs {tool} without `need {tool}`"
        assert needed[tool] < line, (
            f"{script.name}:{line} runs {tool} before `need` checks it (line {needed[tool]})"
        )
    for called in called_scripts(script):
        assert called.is_file(), f"{script.name} calls {called.relative_to(ROOT)}, which is missing"


def test_every_needed_tool_is_listed_in_docs_kind_md() -> None:
    listed = documented_tools()
    for script in SCRIPTS:
        _, needed = tools_and_needs(script)
        missing = set(needed) - listed
        assert not missing, f"{script.name} needs {sorted(missing)}: list them in docs/kind.md"


def test_each_kind_target_runs_a_hack_script() -> None:
    recipes = make_recipes()
    for target in ALL_KIND_TARGETS:
        assert target in recipes, f"the Makefile has no target {target}"
        lines = recipes[target]
        assert lines, f"make {target} does nothing"
        for line in lines:
            assert line.startswith("hack/"), f"make {target} runs `{line}`, not a hack/ script"
            assert (ROOT / line.split()[0]).is_file(), line


def test_the_kind_demo_needs_only_docker_kind_kubectl_and_helm() -> None:
    recipes = make_recipes()
    seen: set[Path] = set()
    todo = [s for target in KIND_TARGETS for s in scripts_of(target, recipes)]
    needed: set[str] = set()
    while todo:
        script = todo.pop()
        if script in seen:
            continue
        seen.add(script)
        needed |= set(tools_and_needs(script)[1])
        todo += called_scripts(script)
    assert needed <= HOST_TOOLS, f"the kind demo also needs {sorted(needed - HOST_TOOLS)}"
    assert needed == HOST_TOOLS, needed
    assert documented_tools() == HOST_TOOLS


def test_the_emulated_api_validates_against_the_kind_nodes_kubernetes() -> None:
    """The operator tier checks core objects against the Kubernetes of hack/kind.yaml."""
    node = re.search(
        r"kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}", (HACK / "kind.yaml").read_text()
    )
    assert node, "hack/kind.yaml pins no kindest/node by digest"
    assert node[1] == KUBERNETES_VERSION
