"""What every benchmark prints about the machine it ran on (shared by the scripts in this folder)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo with its family, model and widest vector extension.

    A virtual machine often reports only "AMD EPYC" or "Intel Xeon", a name shared by CPUs on which
    the same benchmark gives other ratios (README, Performance), so the family and model numbers and
    the widest of AVX-512, AVX2 and AVX come with it: "AMD EPYC, family 23, model 49, AVX2" (see
    :func:`describe_cpuinfo`). Elsewhere, what ``platform`` knows.
    """
    try:
        described = describe_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        described = None
    return described or platform.processor() or platform.machine()


def describe_cpuinfo(text: str):
    """The first processor of a /proc/cpuinfo text as "MODEL NAME, family F, model M, VECTOR", or None.

    None where that processor has no "model name" line (an ARM /proc/cpuinfo, say). A missing family,
    model or vector extension is left out. AVX-512 means the foundation (``avx512f``) is there.
    """
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:  # the first processor's block is enough
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if not fields.get("model name"):
        return None
    flags = fields.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else None
    details = [
        fields["model name"],
        f"family {fields['cpu family']}" if "cpu family" in fields else None,
        f"model {fields['model']}" if "model" in fields else None,
        vector,
    ]
    return ", ".join(detail for detail in details if detail)


def load_average():
    """The 1-, 5- and 15-minute load averages rounded to 0.01, or None where the OS has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_description(device=None) -> dict:
    """The CPU, its cores, the load average now and the versions of the numerical libraries already imported.

    With torch imported: its version, its CPU threads and the GPU's name (``device``'s where it is a CUDA
    device, else CUDA device 0 where there is one, else None). Only libraries the script imported are
    listed, so describing the machine imports nothing.
    """
    info = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1_5_15": load_average(),
    }
    for name in ("numpy", "torch", "transformers", "jax"):
        version = getattr(sys.modules.get(name), "__version__", None)  # a module set to None blocks its import
        if version is not None:
            info[name] = version
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if device is not None and getattr(device, "type", None) == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
        elif device is None and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        else:
            info["gpu"] = None
    return info
