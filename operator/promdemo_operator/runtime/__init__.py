"""The Kubernetes runtime: the kopf handlers, the API client, leader election, the
operator's options and start-up, its own metrics. Thin adapters over the core, the
heal loop and the Prometheus layer."""
