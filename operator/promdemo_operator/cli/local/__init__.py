"""`promdemo local`: the whole demo on one machine, without Kubernetes.

What runs, all on 127.0.0.1 and all stopped together: `--replicas` order-service
processes (`python -m promdemo_app`), the heal engine the operator uses,
Prometheus and Alertmanager when installed, and with `--with-load` rounds of
orders that drive an inventory below zero.

    options.py     LocalConfig (the options as data) and the port plan
    procs.py       child processes that cannot outlive the demo; readiness polling
    monitoring.py  Prometheus, Alertmanager and the receiver of its alerts
    state.py       what the demo knows: replicas, their last readings, counters
    loops.py       the heal, monitor, Prometheus-reading and load loops
    health.py      what Prometheus says (targets, rules, alerts, lesson numbers) and the fix
    links.py       the lessons' queries as Prometheus links
    banner.py      the lines printed once everything is ready
    ui.py          the outputs: a live panel on a terminal, plain lines otherwise
    demo.py        LocalDemo: start everything, run the loops, stop everything

The command line (`promdemo local`) is `cli/commands/local.py`.
"""
