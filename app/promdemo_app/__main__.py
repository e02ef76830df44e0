"""`python -m promdemo_app --host H --port P`: the same as `promdemo-app`."""

from promdemo_app.cli import main

raise SystemExit(main())
