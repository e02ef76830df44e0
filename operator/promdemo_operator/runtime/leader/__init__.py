"""Leader election on a coordination.k8s.io/v1 Lease (`promdemo operator --leader-elect`).

`election.py` is the plain-Python core (client-go's semantics, an injected clock and
a lease store); `lease.py` stores the Lease through the API; `runner.py` runs the
election beside the operator (acquire before anything starts, renew, exit on loss).
"""
