"""Argument checks shared by the torch twins: devices, dtypes and batch shapes, never a silent broadcast.

Every error names the argument and says what would be valid, as :mod:`textsampling._validation` does
for the NumPy reference. Checks of *values* (NaN, ``+inf``, uniforms outside (0, 1)) need one
device-to-host synchronisation each; the twins gather them into a single ``torch.any`` per call.
"""

from __future__ import annotations

import torch

__all__ = [
    "FLOAT_DTYPES",
    "check_float_dtype",
    "resolve_device",
    "same_device",
    "check_tensor",
    "check_same_device",
    "check_same_dtype",
    "check_batch",
    "raise_if",
]

#: The floating dtypes a twin computes in: float32 by default, float64 for the exact cross-checks.
FLOAT_DTYPES = (torch.float32, torch.float64)


def check_float_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` (the default, ``None``, is float32)."""
    if dtype is None:
        return torch.float32
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def resolve_device(device) -> torch.device:
    """A ``torch.device`` with an explicit index for CUDA (``"cuda"`` means the current device)."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError):
        raise TypeError(f"device must be a torch.device or a string such as 'cpu' or 'cuda', got {device!r}") from None
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def same_device(first, second) -> bool:
    """Whether two devices are the same (``cuda`` and ``cuda:<current>`` count as equal)."""
    if first == second:  # the common case, without resolving (a per-step cost on small batches)
        return True
    return resolve_device(first) == resolve_device(second)


def check_tensor(value, name: str, *, integer: bool | None = None, ndim: int | None = None) -> torch.Tensor:
    """``value`` must be a tensor (of integer or floating dtype when asked, of ``ndim`` dimensions)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if integer is True and (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool):
        raise TypeError(f"{name} must hold integers (e.g. torch.int64), got dtype {value.dtype}")
    if integer is False and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor (torch.float32 or torch.float64), got dtype {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(value.shape)}")
    return value


def check_same_device(**tensors) -> torch.device:
    """All tensors on one device; the error names each argument and its device."""
    items = [(name, t) for name, t in tensors.items() if isinstance(t, torch.Tensor)]
    if not items:
        raise TypeError("expected at least one tensor")
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if not same_device(tensor.device, first.device):
            where = ", ".join(f"{n} on {t.device}" for n, t in items)
            raise ValueError(f"tensors must be on one device, got {where}; move {name} with .to({first_name}.device)")
    return first.device


def check_same_dtype(**tensors) -> torch.dtype:
    """All floating tensors of one dtype (no silent promotion between float32 and float64)."""
    items = [(name, t) for name, t in tensors.items() if isinstance(t, torch.Tensor)]
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if tensor.dtype != first.dtype:
            where = ", ".join(f"{n}: {t.dtype}" for n, t in items)
            raise TypeError(
                f"floating tensors must share one dtype, got {where}; convert {name} with .to({first.dtype})"
            )
    return first.dtype


def check_batch(num_chains: int, **tensors) -> int:
    """Every tensor's leading (chain) dimension equals ``num_chains``: no broadcasting of chains."""
    for name, tensor in tensors.items():
        if tensor.ndim == 0 or tensor.shape[0] != num_chains:
            raise ValueError(
                f"{name} must have a leading chain dimension of size {num_chains} (one row per chain), "
                f"got shape {tuple(tensor.shape)}"
            )
    return num_chains


def raise_if(conditions: list, messages: list) -> None:
    """Evaluate several boolean conditions (tensors or bools) with one synchronisation; raise the first that holds."""
    if not conditions:
        return
    if all(
        isinstance(c, bool) or (isinstance(c, torch.Tensor) and c.device.type == "cpu" and c.numel() == 1)
        for c in conditions
    ):
        flags = [bool(c) for c in conditions]  # Python bools, or CPU flags: read without a synchronisation
    else:
        flags = torch.stack([torch.as_tensor(c).reshape(()) for c in conditions]).cpu().tolist()  # (n,) one sync
    for flag, message in zip(flags, messages, strict=True):
        if flag:
            raise ValueError(message)
