"""The benchmarks' targets in one place: each part checks its own, `make bench` sums them up and sets the exit code.

A target is met or NOT MET on the figure its part names (a median of rounds, or the best of two where an issue
fixed it so); `make bench` ends with a table of every target and exits 1 if any was not met, so a script can tell.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.table import print_table


@dataclass(frozen=True)
class Target:
    bench: str
    goal: str  # what must hold, e.g. "alerter >= 0.5 x ConsumerPerformance (best of 2)"
    measured: str  # the figure, as printed
    met: bool


_checked: list[Target] = []


def check(bench: str, goal: str, measured: str, met: bool) -> bool:
    """Record a target and print its line where the part's table stands; returns `met`."""
    _checked.append(Target(bench, goal, measured, met))
    print(f"target: {goal}: {'met' if met else 'NOT MET'} ({measured})")
    return met


def report() -> int:
    """The table of every target checked so far; 0 when all were met, else 1."""
    if not _checked:
        return 0
    print_table(
        "Targets (NOT MET: the figure missed its goal in this run; exit code 1)",
        ["part", "target", "measured", "result"],
        [[t.bench, t.goal, t.measured, "met" if t.met else "NOT MET"] for t in _checked],
    )
    return 0 if all(t.met for t in _checked) else 1
