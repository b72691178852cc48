"""The benchmark specs shipped with hardbench: ``<name>.yaml`` files, data only.

This package exists so the specs install with hardbench (``pyproject.toml`` packages
them) and are found by name from anywhere: ``include: fashion-mnist`` in a spec,
``hardbench run --data DIR --recipe images``, ``hardbench benchmarks`` lists them.
"""

SHIPPED_BY = "hardbench"  # engine.spec.shipped checks it: tells these specs from another package
