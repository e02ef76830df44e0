"""kopf handlers: thin adapters around the core. Importing this package registers them."""

from promdemo_operator.handlers import reconcile  # noqa: F401

from . import heal, webhook  # noqa: F401
