"""`make demo`'s script: the whole pipeline runs, an alert reaches the stand-in, and Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.alerter_support import REPO
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.skipif(not (REPO / "publisher" / "__main__.py").exists(), reason="the publisher is not built yet")
def test_demo_shows_an_alert_and_stops_cleanly_on_ctrl_c(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    """The demo uses the cluster REDPANDA_BROKERS names and starts stand-in, alerter and publisher with prefixed
    output; an alert block is printed by the stand-in; the publisher's HIGH TEMP lines are folded into the demo's
    summary lines; SIGINT stops publisher, alerter and stand-in in that order, each with exit code 0."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
        "REDPANDA_BROKERS": kafka_bootstrap,  # as a user's .env would name their own cluster
        "SLACK_WEBHOOK_URL": "",  # never a real Slack from a test, whatever .env says
        "CONSUMER_GROUP": f"demo-{unique}",
        "ALERT_TOPIC": f"demo-alerts-{unique}",
        "DLQ_TOPIC": f"demo-dlq-{unique}",
        "INTERVAL_MS": "200",
        "ABNORMAL_PROBABILITY": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--duration", "120", "--topic", f"demo-{unique}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def collect() -> None:
        assert process.stdout is not None
        lines.extend(process.stdout)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any("🔥 GPU IS MELTING 🔥" in line for line in lines), 90, "an alert printed by the stand-in"
        )
        wait_until(lambda: any("readings delivered" in line for line in lines), 30, "a summary line of the demo")
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    reader.join(10)
    output = "".join(lines)
    assert re.search(r"^\[slack\] +🔥 GPU IS MELTING 🔥", output, re.MULTILINE), "alerts shown under [slack]"
    assert re.search(
        r"^\[alerter\] .*HIGH TEMPERATURE ALERT: Device \S+ - [\d.]+°C exceeds threshold of 150\.00°C",
        output,
        re.MULTILINE,
    )
    assert re.search(r"^\[publisher\] ", output, re.MULTILINE)
    assert f"using the Kafka cluster at {kafka_bootstrap}" in output
    assert "Published HIGH TEMP" not in output, "the summary stands for them"
    assert re.search(
        r"^\[demo\] +last 10s: \d+ readings delivered, \d+ above 80°C; hottest now \S+ at [\d.]+°C; \d+ alerts sent$",
        output,
        re.MULTILINE,
    )
    stops = re.findall(r"^\[demo\] +(\w+) \(pid (\d+)\) exited with (-?\d+)$", output, re.MULTILINE)
    assert [(name, code) for name, _, code in stops] == [("publisher", "0"), ("alerter", "0"), ("slack", "0")]
    for _, pid, _ in stops:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert "GPU Temperature Alert Service shutting down" in output, "the goodbye reached the stand-in before it stopped"
