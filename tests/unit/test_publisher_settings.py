"""Publisher settings: the original's names and defaults, our additions, and one clear error per bad value."""

from __future__ import annotations

import pytest

from publisher.kafka_sink import kafka_config
from publisher.settings import load_settings
from shared.config import ConfigError, Env


def test_defaults_are_the_originals() -> None:
    """With nothing set, the Go original's defaults apply, plus ours."""
    settings = load_settings(Env({}))
    assert settings.common.brokers == "localhost:9092"
    assert settings.topic == "gpu-temperature"
    assert settings.num_devices == 5
    assert settings.interval == 1.0
    assert settings.abnormal_probability == 0.05
    assert settings.seed is None
    assert settings.max_ticks is None
    assert settings.topic_partitions == 6
    assert settings.common.topic_replication_factor is None
    assert settings.common.metrics_port == 8701
    assert settings.flush_timeout == 30.0
    assert settings.max_buffered_readings == 500_000
    assert settings.delivery_timeout == 0.0


def test_values_are_read_and_converted() -> None:
    """Every variable is read under its name and converted to its unit."""
    settings = load_settings(
        Env({
            "REDPANDA_BROKERS": "a:1, b:2",
            "REDPANDA_TOPIC": "gpu.temps_2",
            "NUM_DEVICES": "10000",
            "INTERVAL_MS": "0",
            "ABNORMAL_PROBABILITY": "1",
            "SIMULATOR_SEED": "123",
            "MAX_TICKS": "7",
            "TOPIC_PARTITIONS": "12",
            "TOPIC_REPLICATION_FACTOR": "3",
            "FLUSH_TIMEOUT": "1m30s",
            "MAX_BUFFERED_READINGS": "20000",
            "DELIVERY_TIMEOUT": "10m",
        })
    )
    assert settings.common.brokers == "a:1,b:2"
    assert settings.topic == "gpu.temps_2"
    assert (settings.num_devices, settings.interval, settings.abnormal_probability) == (10000, 0.0, 1.0)
    assert (settings.seed, settings.max_ticks, settings.topic_partitions) == (123, 7, 12)
    assert settings.common.topic_replication_factor == 3
    assert (settings.flush_timeout, settings.max_buffered_readings, settings.delivery_timeout) == (90.0, 20000, 600.0)


def test_ticks_option_overrides_max_ticks() -> None:
    """`--ticks N` wins over MAX_TICKS; MAX_TICKS=0 means no limit."""
    assert load_settings(Env({"MAX_TICKS": "50"}), ["--ticks", "3"]).max_ticks == 3
    assert load_settings(Env({"MAX_TICKS": "0"})).max_ticks is None


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({"NUM_DEVICES": "0"}, [], r"NUM_DEVICES=0: expected an integer >= 1"),
        ({"NUM_DEVICES": "2000000"}, [], r"NUM_DEVICES=2000000: expected an integer from 1 to 1,000,000"),
        ({"NUM_DEVICES": "many"}, [], r"NUM_DEVICES='many': expected an integer"),
        ({"ABNORMAL_PROBABILITY": "1.5"}, [], r"ABNORMAL_PROBABILITY='1.5': expected a number from 0 to 1"),
        ({"ABNORMAL_PROBABILITY": "nan"}, [], r"ABNORMAL_PROBABILITY='nan'"),
        ({"INTERVAL_MS": "-1"}, [], r"INTERVAL_MS=-1: expected an integer >= 0"),
        ({"INTERVAL_MS": "1s"}, [], r"INTERVAL_MS='1s': expected an integer"),
        ({"REDPANDA_BROKERS": " , "}, [], r"REDPANDA_BROKERS=' , ': expected a comma-separated list of host:port"),
        ({"REDPANDA_BROKERS": "localhost"}, [], r"REDPANDA_BROKERS='localhost': expected a comma-separated list"),
        ({"REDPANDA_TOPIC": "gpu temps"}, [], r"REDPANDA_TOPIC='gpu temps': expected a topic name"),
        ({"SIMULATOR_SEED": "-3"}, [], r"SIMULATOR_SEED=-3: expected an integer from 0 to 34028236\d{31}$"),
        ({"MAX_TICKS": "-1"}, [], r"MAX_TICKS=-1: expected an integer from 0 to 1000000000000"),
        ({"TOPIC_PARTITIONS": "0"}, [], r"TOPIC_PARTITIONS=0: expected an integer from 1"),
        ({"FLUSH_TIMEOUT": "soon"}, [], r"FLUSH_TIMEOUT='soon': expected a duration"),
        ({"DELIVERY_TIMEOUT": "1000h"}, [], r"DELIVERY_TIMEOUT='1000h': expected a duration .* to 596h"),
        ({"NUM_DEVICES": "100", "MAX_BUFFERED_READINGS": "99"}, [], r"MAX_BUFFERED_READINGS=99: .*NUM_DEVICES \(100\)"),
        ({"LOG_FORMAT": "xml"}, [], r"LOG_FORMAT='xml': expected one of text, json"),
        ({"METRICS_PORT": "70000"}, [], r"METRICS_PORT=70000: expected an integer from 0 to 65535"),
        (
            {},
            ["--bogus"],
            r"unrecognized arguments: --bogus \(usage: gpu-temp-publisher \[-h\] \[--ticks N\] \[--stdout\]; "
            r"see --help\)",
        ),
        ({}, ["--ticks", "0"], r"argument --ticks: expected an integer >= 1, got '0'"),
        ({}, ["--ticks"], r"argument --ticks: expected one argument"),
    ],
)
def test_bad_values_name_the_variable_and_the_form(env: dict[str, str], argv: list[str], message: str) -> None:
    """Each malformed or out-of-range value is refused with the variable (or option) and the expected form."""
    with pytest.raises(ConfigError, match=message):
        load_settings(Env(env), argv)


def test_producer_settings_keep_every_reading() -> None:
    """The producer is durable and ordered, never expires readings by default, and its queue fits one more tick."""
    config = kafka_config(load_settings(Env({"NUM_DEVICES": "1000", "MAX_BUFFERED_READINGS": "20000"})))
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["partitioner"] == "murmur2_random"
    assert config["linger.ms"] == 5
    assert config["batch.size"] == 1_000_000
    assert config["message.timeout.ms"] == 0
    assert config["delivery.report.only.error"] is True
    assert config["queue.buffering.max.messages"] == 21_000
    assert kafka_config(load_settings(Env({"DELIVERY_TIMEOUT": "90s"})))["message.timeout.ms"] == 90_000


def test_sources_default_to_the_simulator_and_read_their_settings() -> None:
    """READINGS_SOURCE defaults to the simulator; nvml and dcgm read their own variables, HOST_NAME for all."""
    default = load_settings(Env({}))
    assert default.source.kind == "simulator"
    assert default.source.host_name  # this machine's name
    assert (default.stdout, default.device_series_limit) == (False, 10_000)
    nvml = load_settings(Env({"READINGS_SOURCE": "NVML", "NVML_DEVICES": "0, GPU-5e5ba9a0-1111", "HOST_NAME": "n1"}))
    assert (nvml.source.kind, nvml.source.nvml_devices, nvml.source.host_name) == ("nvml", ("0", "GPU-5e5ba9a0-1111"),
                                                                                  "n1")
    dcgm = load_settings(Env({"READINGS_SOURCE": "dcgm", "DCGM_EXPORTER_URLS": "http://a:9400/metrics,https://b/m",
                              "DCGM_SCRAPE_TIMEOUT": "500ms"}), ["--stdout"])
    assert dcgm.source.dcgm_urls == ("http://a:9400/metrics", "https://b/m")
    assert (dcgm.source.scrape_timeout, dcgm.stdout) == (0.5, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"READINGS_SOURCE": "gpu"}, r"READINGS_SOURCE='gpu': expected one of simulator, nvml, dcgm"),
        ({"NVML_DEVICES": "0,first"}, r"NVML_DEVICES='0,first': expected GPU indices \(0, 1, ...\) or UUIDs"),
        ({"DCGM_EXPORTER_URLS": "ftp://x/metrics"}, r"DCGM_EXPORTER_URLS='ftp://x/metrics': expected http\(s\)://"),
        ({"READINGS_SOURCE": "dcgm"}, r"DCGM_EXPORTER_URLS is not set: READINGS_SOURCE=dcgm needs at least one"),
        ({"DCGM_SCRAPE_TIMEOUT": "5m"}, r"DCGM_SCRAPE_TIMEOUT='5m': expected a duration .* to 1m"),
        ({"METRICS_DEVICE_SERIES_LIMIT": "-1"}, r"METRICS_DEVICE_SERIES_LIMIT=-1: expected an integer from 0 to"),
        ({"HOST_NAME": "h" * 300}, r"HOST_NAME: expected at most 256 characters"),
    ],
)
def test_bad_source_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    """Each bad source setting is refused with one message naming the variable and the expected form."""
    with pytest.raises(ConfigError, match=message):
        load_settings(Env(env))


def test_stdout_takes_any_free_metrics_port_unless_one_is_set() -> None:
    """`--stdout` next to a running publisher must not fail on its metrics port: a free one, unless METRICS_PORT."""
    assert load_settings(Env({}), ["--stdout"]).common.metrics_port == 0
    assert load_settings(Env({"METRICS_PORT": "9999"}), ["--stdout"]).common.metrics_port == 9999
    assert load_settings(Env({})).common.metrics_port != 0
