"""scripts/gpu-smoke end to end: the real script and publisher, the C NVML stand-in and an nvidia-smi stand-in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.gpu_support import REPO, Gpu, NvmlHost
from tests.integration.test_publisher import OWN_VARIABLES
from tests.integration.test_publisher_nvml import UUID_A, UUID_B, host, stand_in_dir  # noqa: F401 - fixtures

SMI = REPO / "tests" / "nvml_stand_in" / "nvidia-smi"


def smoke(nvml: NvmlHost, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    return subprocess.run(
        [str(REPO / "scripts" / "gpu-smoke"), "--ticks", "1"],
        env={**base, **nvml.env, "NVIDIA_SMI": str(SMI), **env}, capture_output=True, text=True, timeout=120,
    )


def test_agreeing_gpus_print_a_table_and_exit_0(host: NvmlHost) -> None:  # noqa: F811 - the fixture
    """Every field of both GPUs agrees (an unsupported power on both sides too): a table, `all fields agree`, 0."""
    result = smoke(host)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all fields agree" in result.stdout
    for field in ("index", "name", "temperature", "power", "utilization"):
        assert f"{UUID_A}  {field}" in result.stdout
    assert "MISMATCH" not in result.stdout


def test_a_temperature_off_by_more_than_the_tolerance_fails(host: NvmlHost) -> None:  # noqa: F811 - the fixture
    """nvidia-smi seeing 10 °C more than the publisher is a mismatch: the row says so and the exit code is 1."""
    result = smoke(host, SMI_TEMPERATURE_OFFSET="10")
    assert result.returncode == 1
    assert any(line.startswith(UUID_B) and "temperature" in line and "MISMATCH" in line
               for line in result.stdout.splitlines())


def test_a_gpu_only_nvidia_smi_sees_fails(host: NvmlHost, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """A GPU the publisher was told to skip (NVML_DEVICES) but nvidia-smi lists is reported missing: exit 1."""
    host.gpus.append(Gpu("GPU-99999999-0000", "Tesla T4", 40, 20_000, 0, 85, 90, 0))
    host.write()
    result = smoke(host, NVML_DEVICES=f"{UUID_A},{UUID_B}")
    assert result.returncode == 1
    assert any(line.split()[:5] == ["GPU-99999999-0000", "(gpu)", "missing", "present", "MISMATCH"]
               for line in result.stdout.splitlines())
