"""`promdemo doctor`: is each PromDemo deployed, selected, scraped and evaluated? And the fix.

- `chain`: the links from a PromDemo to its alerts, decided from facts already
  read, and the fix for the first broken one (plain Python, no I/O);
- `cluster`: reads those facts with the user's credentials (kubeconfig or
  in-cluster), and asks each selecting Prometheus through the API server's
  service proxy (or one `--prometheus-url`) once.

The command itself (options, output) is `promdemo_operator.cli.commands.doctor`.
"""
