"""nbstate's benchmarks: `python -m bench.run [--quick]` runs them all, `python -m bench.<name>` one.

A benchmark is a module here that defines ``BENCHMARK`` (its title) and ``main(argv, invoked_as)``.
Results go to bench/results/<name>.json and a section of bench/RESULTS.md.
"""
