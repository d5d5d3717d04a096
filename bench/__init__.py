"""duet's benchmark: a load generator on the `websockets` client, and the runs it drives.

    python -m bench --quick      # every scenario, small sizes, under 3 minutes
    python -m bench              # the full sizes
    python -m bench --profile    # py-spy on one gateway during a throughput run

Modules, by role:

    stack.py      start mongod (unless DUET_MONGO_URL answers), gateways, persister, relay
                  (through devstack.launch, as the tests and `make run` do); clean up the
                  prefixed broker names and database, whatever happens
    procs.py      CPU seconds and RSS of each process; the machine's description
    envelopes.py  shape-valid random envelopes, send frames, broker bodies
    accounts.py   users and friendships over the v1 REST API
    loadgen.py    sockets, closed- and open-loop senders, loss/duplicate/order checks
    relay.py      the reference ceiling: a bare websockets relay (`python -m bench.relay`)
    plan.py       the sizes: QUICK and FULL
    scenarios.py  (a) throughput, (b) latency, (e) relay; idle.py (c); drain.py (d)
    report.py     bench/results/latest.json and latest.md
    profile.py    py-spy on a gateway, its top functions as text
"""
