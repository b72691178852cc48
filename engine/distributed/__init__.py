"""Ray orchestration: cluster connection, seed replicas, scoring pool, model training tasks.

The only package of ``engine`` that imports Ray (lazily, inside functions, so the
plain per-block and per-replica functions also run with no cluster).
"""
