"""The publisher's settings: the Go original's variables and defaults, plus ours, checked at start-up.

Every bad value raises ConfigError naming the variable and the form it
expects; so does an unknown command-line option. The entry point turns that
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from shared.config import CommonSettings, ConfigError, Env, load_common

SERVICE: Final = "gpu-temp-publisher"
DEFAULT_METRICS_PORT: Final = 8701  # clear of node_exporter (9100) and the 9100-9999 exporter range
HIGH_TEMPERATURE: Final = 80.0  # °C above which a published reading is logged, as in the original
MAX_DEVICES: Final = 1_000_000
MAX_INTERVAL_MS: Final = 24 * 3600 * 1000
# librdkafka's own ceilings for its queue length and for message.timeout.ms.
MAX_QUEUE_MESSAGES: Final = 2_147_483_647
MAX_DELIVERY_TIMEOUT: Final = 2_147_483_647 / 1000
MAX_TICKS: Final = 10**12  # more than 30,000 years of one-second ticks
MAX_SEED: Final = 2**128 - 1  # numpy's SeedSequence draws 128-bit seeds, so a logged seed can be given back
MAX_FLUSH_TIMEOUT: Final = 3600.0
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class PublisherSettings:
    common: CommonSettings
    topic: str
    num_devices: int
    interval: float  # seconds between ticks; 0 = as fast as possible
    abnormal_probability: float
    seed: int | None  # None: a fresh seed each run (logged, so the run can be repeated)
    max_ticks: int | None  # None: until stopped
    topic_partitions: int
    flush_timeout: float  # seconds granted to deliver what is buffered at shutdown
    max_buffered_readings: int  # readings waiting for the cluster before the ticker pauses
    delivery_timeout: float  # seconds a reading may wait for delivery; 0 = no limit


def load_settings(env: Env, argv: Sequence[str] = ()) -> PublisherSettings:
    args = _parse_args(argv)
    common = load_common(env, default_metrics_port=DEFAULT_METRICS_PORT)
    topic = env.string("REDPANDA_TOPIC", "gpu-temperature")
    if not _TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        raise ConfigError(f"REDPANDA_TOPIC={topic!r}: expected a topic name of 1 to 249 letters, digits, '.', '_', '-'")
    num_devices = _bounded(env, "NUM_DEVICES", 5, 1, MAX_DEVICES)
    max_ticks = env.integer("MAX_TICKS", 0, minimum=0, maximum=MAX_TICKS) or None
    if args.ticks is not None:
        max_ticks = args.ticks
    max_buffered = _bounded(env, "MAX_BUFFERED_READINGS", 500_000, 1, MAX_QUEUE_MESSAGES // 2)
    if max_buffered < num_devices:
        raise ConfigError(
            f"MAX_BUFFERED_READINGS={max_buffered}: expected an integer >= NUM_DEVICES ({num_devices}),"
            " so that one tick fits in the buffer"
        )
    delivery_timeout = env.duration("DELIVERY_TIMEOUT", 0.0, maximum=MAX_DELIVERY_TIMEOUT)  # 0: no limit
    seed_text = env.raw("SIMULATOR_SEED")
    return PublisherSettings(
        common=common,
        topic=topic,
        num_devices=num_devices,
        interval=_bounded(env, "INTERVAL_MS", 1000, 0, MAX_INTERVAL_MS) / 1000,
        abnormal_probability=env.number("ABNORMAL_PROBABILITY", 0.05, minimum=0.0, maximum=1.0),
        seed=None if seed_text is None else env.integer("SIMULATOR_SEED", 0, minimum=0, maximum=MAX_SEED),
        max_ticks=max_ticks,
        topic_partitions=env.integer("TOPIC_PARTITIONS", 6, minimum=1, maximum=10_000),
        flush_timeout=env.duration("FLUSH_TIMEOUT", 30.0, maximum=MAX_FLUSH_TIMEOUT),
        max_buffered_readings=max_buffered,
        delivery_timeout=delivery_timeout,
    )


def _bounded(env: Env, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum], with the bounds written out in full in the error."""
    value = env.integer(name, default, minimum=minimum)
    if value > maximum:
        raise ConfigError(f"{name}={value}: expected an integer from {minimum} to {maximum:,}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a ConfigError (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (usage: {SERVICE} [--ticks N])")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    if value > MAX_TICKS:
        raise argparse.ArgumentTypeError(f"expected an integer <= {MAX_TICKS}, got {text!r}")
    return value


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog=SERVICE,
        description="Simulate GPU temperature readings and publish them to Kafka. Configured by environment variables"
        " (see the README); a .env file in the working directory is read too.",
    )
    parser.add_argument(
        "--ticks", type=_positive, metavar="N", help="stop after N ticks (overrides MAX_TICKS); N >= 1"
    )
    return parser.parse_args(list(argv))
