"""kopf handlers: thin adapters around the core. Importing this package registers them."""

from promdemo_operator.handlers import reconcile  # noqa: F401
