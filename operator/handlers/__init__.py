"""kopf handlers: thin adapters around the core. Importing this package registers them."""
