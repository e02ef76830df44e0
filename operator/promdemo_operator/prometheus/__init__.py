"""Everything about Prometheus: which Prometheus selects a PromDemo (selection), its
HTTP API (client, parsers, cache), what it says in a PromDemo's status, the diagnosis
chain doctor and the operator share, and the config `promdemo local` runs it with.
Imports only the core."""
