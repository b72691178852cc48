"""Split selectors, the split builder and the benchmark card (the spec lives in ``engine.spec``)."""
