"""Auto-heal: decide when a pod's inventory is reset (policy) and do it (engine)."""
