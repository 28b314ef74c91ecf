"""The CUDA GPUs of this machine, for the GPU providers' defaults and checks.

No GPU library is needed to ask: CuPy answers when it is installed, ``nvidia-smi`` otherwise, and a
machine with neither has no usable GPU. Both answers are cached for the life of the process.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "GPUDevice",
    "cuda_devices",
    "cuda_driver_major",
    "cuquantum_extra",
    "statevector_qubits",
    "memory_qubits",
    "default_statevector_qubits",
    "STATE_FRACTION",
]

#: Share of a GPU's memory a statevector may take; the rest is left to workspaces and the sampler.
STATE_FRACTION = 0.8


@dataclass(frozen=True)
class GPUDevice:
    """One CUDA device as the driver reports it.

    Attributes:
        index: CUDA device ordinal (as ``CUDA_VISIBLE_DEVICES`` renumbers them).
        name: Marketing name, e.g. ``"NVIDIA H200"``.
        total_bytes: Device memory.
    """

    index: int
    name: str
    total_bytes: int

    def describe(self) -> str:
        return f"GPU {self.index} ({self.name}, {self.total_bytes / 2**30:.0f} GiB)"


@functools.lru_cache(maxsize=1)
def cuda_devices() -> tuple[GPUDevice, ...]:
    """The CUDA devices visible to this process; empty where there is none or no driver."""
    found = _cupy_devices()
    return found if found is not None else _nvidia_smi_devices()


def _cupy_devices() -> tuple[GPUDevice, ...] | None:
    """Devices through CuPy, or None when CuPy is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    except Exception:  # a broken CUDA install can fail at import with anything
        return ()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        out = []
        for index in range(count):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props.get("name", b"")
            name = name.decode() if isinstance(name, bytes) else str(name)
            out.append(GPUDevice(index, name, int(props.get("totalGlobalMem", 0))))
        return tuple(out)
    except Exception:  # no driver, driver too old for the runtime, no device
        return ()


def _nvidia_smi_devices() -> tuple[GPUDevice, ...]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        text = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            out.append(GPUDevice(int(parts[0]), parts[1], int(parts[2]) * 2**20))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def cuda_driver_major() -> int | None:
    """The CUDA version the driver supports (12, 13...), or None without a driver."""
    try:
        import cupy

        version = int(cupy.cuda.runtime.driverGetVersion())  # e.g. 13000
        if version > 0:
            return version // 1000
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        text = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*(\d+)\.", text)
    return int(match.group(1)) if match else None


def cuquantum_extra() -> str:
    """The pip extra whose cuQuantum and CuPy wheels match this machine's driver."""
    major = cuda_driver_major()
    return "cuquantum-cu12" if major is not None and major < 13 else "cuquantum-cu13"


def statevector_qubits(total_bytes: int, bytes_per_amplitude: int, fraction: float = STATE_FRACTION) -> int:
    """Widest statevector of ``bytes_per_amplitude`` amplitudes that fits in ``fraction`` of ``total_bytes``.

    >>> statevector_qubits(141 * 2**30, 16)  # an H200 in complex128
    32
    """
    if total_bytes <= 0:
        return 1
    return max(1, math.floor(math.log2(total_bytes * fraction / bytes_per_amplitude)))


def memory_qubits(bytes_per_amplitude: int = 16, fraction: float = 0.5) -> int:
    """Widest statevector that fits in ``fraction`` of this machine's (host) memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 24
    return statevector_qubits(total, bytes_per_amplitude, fraction)


def default_statevector_qubits(bytes_per_amplitude: int, gpus: Sequence[int] | None = None) -> int:
    """Default width of a GPU statevector node: what the smallest of ``gpus`` (default: every visible
    GPU) holds, or what half of host memory holds where none of them is visible."""
    by_index = {d.index: d for d in cuda_devices()}
    memories = [by_index[g].total_bytes for g in (by_index if gpus is None else gpus) if g in by_index]
    if memories:
        return statevector_qubits(min(memories), bytes_per_amplitude)
    return memory_qubits(bytes_per_amplitude)
