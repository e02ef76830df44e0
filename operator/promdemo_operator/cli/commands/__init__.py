"""One module per `promdemo` subcommand: its options and what it prints.

Each module exposes `add_arguments(parser)` and `run(args) -> int` (an exit code
of `cliargs`) and is imported by `cli.py` only when its subcommand is used. They
are adapters: they read options, call the library (`render`, `load`, `local`)
and print; the library never imports them.
"""
