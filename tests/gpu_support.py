"""Real stand-ins for GPU hosts: the C libnvidia-ml.so.1 built with gcc, and the publisher run as a process.

No GPU here, so the lowest level is made real instead: NVIDIA's own Python
binding (nvidia-ml-py) loads our C library through LD_LIBRARY_PATH exactly as
it would load the driver's, and the test controls what each GPU reports by
rewriting the library's state file while the publisher runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

REPO = Path(__file__).resolve().parent.parent
STAND_IN_SOURCE = REPO / "tests" / "nvml_stand_in" / "nvml_stand_in.c"
T = TypeVar("T")


def build_nvml_stand_in(folder: Path) -> Path:
    """Compile the stand-in into `folder`/libnvidia-ml.so.1 (the name the binding asks the loader for)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("no C compiler (gcc) to build the NVML stand-in")
    library = folder / "libnvidia-ml.so.1"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(library), str(STAND_IN_SOURCE)],
        check=True, capture_output=True, text=True,
    )
    return library


@dataclass
class Gpu:
    """One GPU of the stand-in; any value may be a number or an NVML error name such as NOT_SUPPORTED."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    temperature: int | str = 45
    power_mw: int | str = 71_234
    utilization: int | str = 37
    slowdown: int | str = 87
    shutdown: int | str = 92
    reasons: int | str = 0
    handle: str = "OK"

    def line(self) -> str:
        values = (self.handle, self.uuid, self.name, self.temperature, self.power_mw, self.utilization,
                  self.slowdown, self.shutdown, self.reasons)
        return "\t".join(["gpu", *map(str, values)])


@dataclass
class NvmlHost:
    """The state file the stand-in reads on every call: rewrite it and the 'driver' changes at once."""

    state: Path
    library_dir: Path
    gpus: list[Gpu] = field(default_factory=list)
    init: str = "OK"

    def write(self) -> None:
        text = "\n".join([f"init\t{self.init}", *(gpu.line() for gpu in self.gpus)]) + "\n"
        temporary = self.state.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.state)  # atomic: the library never reads half a file

    @property
    def env(self) -> dict[str, str]:
        return {"LD_LIBRARY_PATH": str(self.library_dir), "NVML_STAND_IN_STATE": str(self.state)}


class PublisherProcess:
    """`python -m publisher` with stdout lines (--stdout readings) and JSON log events collected as they come."""

    def __init__(self, cwd: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        from tests.integration.test_publisher import OWN_VARIABLES  # noqa: PLC0415 - one list of variables

        base = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
        self.lines: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "publisher", *args],
            # Port 9 refuses: a test that forgets its cluster never reaches someone else's.
            env={**base, "LOG_FORMAT": "json", "METRICS_PORT": "0", "REDPANDA_BROKERS": "127.0.0.1:9", **env},
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self.lines), daemon=True),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _collect(stream: Any, into: list[bytes]) -> None:
        for line in iter(stream.readline, b""):
            into.append(line.rstrip(b"\n"))

    def readings(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(line) for line in list(self.lines) if line.startswith(b"{")]

    def log(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.stderr):
            try:
                out.append(msgspec.json.decode(line))
            except msgspec.DecodeError:
                out.append({"event": line.decode(errors="replace"), "raw": True})
        return out

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        for thread in self._threads:
            thread.join(10)
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.wait(30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def eventually(timeout: float, probe: Callable[[], T | None], interval: float = 0.05) -> T:
    """The first non-None result of `probe` (a sentinel arrived), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None and result is not False:
            return result
        time.sleep(interval)
    raise AssertionError(f"nothing within {timeout}s")


def dcgm_page(host: str | None, gpus: list[dict[str, Any]], hostname_label: str = "Hostname") -> str:
    """A dcgm-exporter /metrics page (its default counters' layout and labels) for these GPUs.

    Each GPU: index, uuid, model and optional temp, power, util, mem_temp (a value or DCGM's blank sentinel).
    """
    fields = (
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "clock"),
        ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", "mem_temp"),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "temp"),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power"),
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "util"),
    )
    lines = []
    for name, kind, help_text, key in fields:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for gpu in gpus:
            if key not in gpu and key != "clock":
                continue
            labels = (f'gpu="{gpu["index"]}",UUID="{gpu["uuid"]}",pci_bus_id="00000000:{gpu["index"]:02X}:00.0",'
                      f'device="nvidia{gpu["index"]}",modelName="{gpu["model"]}"')
            if host is not None:
                labels += f',{hostname_label}="{host}"'
            lines.append(f"{name}{{{labels}}} {gpu.get(key, 1410)}")
    return "\n".join(lines) + "\n"


class DcgmExporterStandIn:
    """A real HTTP server on loopback serving dcgm-exporter pages the test can change or slow down at any time."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

        self.pages: dict[str, str] = {}
        self.delay: dict[str, float] = {}
        self.scrapes: dict[str, int] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path
                stand_in.scrapes[path] = stand_in.scrapes.get(path, 0) + 1
                time.sleep(stand_in.delay.get(path, 0.0))
                page = stand_in.pages.get(path)
                body = (page or "not found\n").encode()
                self.send_response(200 if page is not None else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read what they need from the server's state."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> DcgmExporterStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
