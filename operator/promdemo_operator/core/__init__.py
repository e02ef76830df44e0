"""The pure core: the PromDemo spec and its CRD, the children rendered from it, the
alert rules, the status conditions, the apply plan, when to heal. No I/O, no
Kubernetes client, no kopf; every other layer builds on it and it imports none of them."""
