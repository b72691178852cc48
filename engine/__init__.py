"""hardbench: build hard benchmarks from the training dynamics of small seed ensembles.

The import package is ``engine``; the distribution and console script are ``hardbench``.
"""

__version__ = "0.1.0"
