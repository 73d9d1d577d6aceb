"""`make bench`: every benchmark of the project, one table each, against KAFKA_BOOTSTRAP_SERVERS.

Each part is a module of this package with a `main(bootstrap: str) -> None`
that prints its table(s); ratios are measured side by side in one run.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys

PARTS = ("bench.publisher", "bench.alerter", "bench.forecast")


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("bench: KAFKA_BOOTSTRAP_SERVERS is not set (run it through `make bench`)", file=sys.stderr)
        return 2
    only = set(sys.argv[1:])
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cluster: {bootstrap}")
    for name in PARTS:
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        importlib.import_module(name).main(bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
