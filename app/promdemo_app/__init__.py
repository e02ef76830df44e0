"""promdemo's order service: a Flask shop instrumented for the Prometheus lessons."""

__version__ = "0.1.0"
