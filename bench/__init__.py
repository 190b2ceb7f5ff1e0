"""tether's benchmark harness: ``make bench`` (``python -m bench``).

It compares, in one run on one machine, tether's ``Client`` (no policies and every policy) with
bare httpx2, httpx2 on tether's aiohttp engine, pure aiohttp and a hand-assembled
httpx + tenacity + aiolimiter + purgatory stack, all calling ``GET /fast`` on the bundled mock
server running in its own process on its own core. It writes ``docs/benchmarks.md``,
``docs/benchmarks.png`` and the raw numbers as JSON under ``bench/results/``.

Modules: ``clients`` (the contenders), ``tether_adapter`` (builds tether clients across API
versions), ``server`` (the server process, its CPU time, its capacity), ``measure`` (one
measurement), ``report`` (summary, markdown, plot), ``run`` (the command line).
"""
