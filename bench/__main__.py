"""`make bench`: every benchmark of the project, one table each, against KAFKA_BOOTSTRAP_SERVERS.

Each part is a module of this package with a `main(bootstrap: str) -> None`
that prints its table(s); ratios are measured side by side in one run.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PARTS = ("bench.publisher", "bench.alerter", "bench.forecast")


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:  # run again inside the local cluster, started (and stopped) for the run
        launcher = REPO / "scripts" / "with-local-kafka"
        os.execv(launcher, [str(launcher), sys.executable, "-m", "bench", *sys.argv[1:]])  # noqa: S606 - fixed
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
