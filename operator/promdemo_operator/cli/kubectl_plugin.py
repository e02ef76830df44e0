"""`kubectl promdemo`: the kubectl plugin (the `kubectl-promdemo` console script).

    kubectl promdemo doctor [NAME] [-n NS | -A] [--context CTX] [--kubeconfig FILE]
    kubectl promdemo check-selection -f FILE --prometheus FILE [-n NS]
    kubectl promdemo render -f FILE [-n NS]

kubectl runs the first `kubectl-promdemo` on PATH with every word after
`promdemo` (it refuses its own flags before a plugin's name, so every flag
arrives here). The plugin applies kubectl's conventions, then hands over to the
`promdemo` command of the same name (`cli.main`), whose options, output and
exit codes are unchanged:

- kubectl's flags `--kubeconfig`, `--context`, `-n/--namespace` and
  `-A/--all-namespaces` may stand before or after the subcommand (`kubectl
  promdemo -n demo doctor` is `kubectl promdemo doctor -n demo`), in pflag's
  spellings too (`--namespace=demo`, `-n=demo`, `-ndemo`); the last one wins;
- without `-n`, the namespace is the kubeconfig context's (`--kubeconfig`, else
  $KUBECONFIG, else ~/.kube/config; `--context`, else the current one), as
  `kubectl apply -f` places an object that names none. `doctor` always did
  this; `render` and `check-selection` now do it for a PromDemo that names no
  namespace (`promdemo` alone says "default" there, and reads no kubeconfig);
- `-A` with a command that reads its PromDemos from a file is a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from promdemo_operator.cli import main as cli
from promdemo_operator.core import cliargs

PROG = "kubectl promdemo"
#: The `promdemo` commands a kubectl user reaches as `kubectl promdemo ...`.
COMMANDS = ("doctor", "check-selection", "render")
#: Commands that read the PromDemos from a file (-A means nothing there).
FILE_COMMANDS = ("check-selection", "render")
DESCRIPTION = """\
promdemo's diagnosis commands as a kubectl plugin. kubectl's flags --kubeconfig,
--context, -n/--namespace and -A/--all-namespaces go before or after the command;
without -n the namespace is the kubeconfig context's, as for kubectl."""

_VALUE_FLAGS = {
    "--kubeconfig": "kubeconfig",
    "--context": "context",
    "-n": "namespace",
    "--namespace": "namespace",
}
#: -A and pflag's spellings of the boolean --all-namespaces.
_ALL_NAMESPACES = {
    "-A": True,
    "--all-namespaces": True,
    "--all-namespaces=true": True,
    "--all-namespaces=false": False,
}


class UsageError(Exception):
    """A kubectl flag the plugin cannot use; one line."""


@dataclass
class KubectlFlags:
    """kubectl's flags as the plugin received them (None: not given)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False


def split_kubectl_flags(argv: Sequence[str]) -> tuple[KubectlFlags, list[str]]:
    """kubectl's flags, wherever they stand before `--`, and the other words in order."""
    flags = KubectlFlags()
    rest: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if word == "--":
            rest.extend(words[i:])
            break
        if word in _ALL_NAMESPACES:
            flags.all_namespaces = _ALL_NAMESPACES[word]
        elif word in _VALUE_FLAGS:
            if i + 1 >= len(words):
                raise UsageError(f"flag needs an argument: {word}")
            setattr(flags, _VALUE_FLAGS[word], words[i + 1])
            i += 1
        elif eq and name in _VALUE_FLAGS:  # --namespace=demo, -n=demo
            setattr(flags, _VALUE_FLAGS[name], value)
        elif word.startswith("-n") and len(word) > 2:  # -ndemo
            flags.namespace = word[2:]
        else:
            rest.append(word)
        i += 1
    for option in ("kubeconfig", "context", "namespace"):
        if getattr(flags, option) == "":
            raise UsageError(f"--{option} needs a non-empty value")
    return flags, rest


def _subcommand_index(words: Sequence[str]) -> int | None:
    for i, word in enumerate(words):
        if word == "--":
            return None
        if not word.startswith("-"):
            return i
    return None


def _passed_on(flags: KubectlFlags, command: str) -> list[str]:
    """The kubectl flags as `promdemo COMMAND` takes them."""
    if command not in FILE_COMMANDS:  # doctor reads the cluster: it takes all four
        passed = []
        if flags.kubeconfig:
            passed += ["--kubeconfig", flags.kubeconfig]
        if flags.context:
            passed += ["--context", flags.context]
        if flags.namespace:
            passed += ["--namespace", flags.namespace]
        if flags.all_namespaces:
            passed.append("--all-namespaces")
        return passed
    if flags.all_namespaces:
        raise UsageError(
            f"-A/--all-namespaces: {command} reads its PromDemos from a file;"
            " name one namespace with -n (default: the context's)"
        )
    from promdemo_operator.cli.doctor.cluster import CredentialsError, kubeconfig_namespace

    namespace = flags.namespace
    if namespace is None:
        try:
            namespace = kubeconfig_namespace(flags.kubeconfig, flags.context)
        except CredentialsError as exc:
            raise UsageError(str(exc)) from exc
    return ["--namespace", namespace] if namespace else []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `kubectl-promdemo`; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        flags, rest = split_kubectl_flags(words)
        at = _subcommand_index(rest)
        if at is None or rest[at] not in COMMANDS:
            # --help, --version, no command or an unknown one: cli's parser says it.
            return _promdemo(rest or ["--help"])
        command = rest[at]
        passed = _passed_on(flags, command)
    except UsageError as exc:
        return cliargs.usage_error(PROG, str(exc))
    return _promdemo([*rest[: at + 1], *passed, *rest[at + 1 :]])


def _promdemo(argv: list[str]) -> int:
    return cli.main(argv, prog=PROG, commands=COMMANDS, description=DESCRIPTION)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
