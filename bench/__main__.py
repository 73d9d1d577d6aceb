"""`make bench` (or `python -m bench [publisher|alerter|forecast]`): every benchmark, one table each, then targets.

Each part is a module of this package with a `main(bootstrap: str) -> None`
that prints its table(s) and checks its targets (bench.targets); ratios are
measured side by side in one run. The cluster: KAFKA_BOOTSTRAP_SERVERS when
set (your own), else a freshly reset local one of the benchmark's own
(bench.cluster). Exit code: 0 when every target was met, 1 when one was not,
2 for a bad argument.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from contextlib import nullcontext

from bench import targets
from bench.cluster import fresh_cluster

# part -> whether it needs a Kafka cluster
PARTS = {"publisher": True, "alerter": True, "forecast": False, "state": False}


def main(argv: list[str]) -> int:
    unknown = set(argv) - set(PARTS)
    if unknown:
        print(f"bench: unknown part {', '.join(sorted(unknown))}: expected any of {', '.join(PARTS)}", file=sys.stderr)
        return 2
    chosen = [name for name in PARTS if not argv or name in argv]
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    needs_cluster = any(PARTS[name] for name in chosen)
    with fresh_cluster() if needs_cluster and not configured else nullcontext(configured) as bootstrap:
        if needs_cluster:
            print(f"cluster: {bootstrap}" + ("" if configured else " (freshly reset for this run)"))
        for name in chosen:
            importlib.import_module(f"bench.{name}").main(bootstrap)
    return targets.report()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
