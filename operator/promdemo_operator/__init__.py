"""promdemo's operator: the PromDemo core (render, rules, heal) and its kopf/CLI adapters."""

__version__ = "0.1.0"
