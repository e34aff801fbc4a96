"""Benchmarks: each runs as ``python -m bench.NAME`` and records its figures.

Every benchmark takes ``--data PATH`` (any dataset in the same format) and ``--json``
(one JSON object on the last line of output), and writes its table into
``docs/benchmarks.md`` with the command that produced it.
"""
