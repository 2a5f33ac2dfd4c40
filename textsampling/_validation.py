"""Argument checks shared by the package: each error names the argument and what would be valid."""

from __future__ import annotations

import numpy as np

__all__ = ["check_logits", "check_positive", "check_int", "check_uniforms"]


def check_logits(logits, name: str = "logits", allow_batch: bool = True) -> np.ndarray:
    """Return ``logits`` as float64, refusing NaN, +inf, empty arrays and all ``-inf`` rows.

    ``-inf`` entries are allowed on purpose: they mark states of probability zero.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 0 or (logits.ndim > 1 and not allow_batch) or logits.ndim > 2:
        raise ValueError(f"{name} must be a 1-D array (or 2-D batch) of log-weights, got shape {logits.shape}")
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} is empty: the support must hold at least one state")
    if np.any(np.isnan(logits)):
        raise ValueError(f"{name} contains NaN; use -inf for a state of probability zero")
    if np.any(logits == np.inf):
        raise ValueError(f"{name} contains +inf; log-weights must be finite or -inf")
    if np.any(np.all(logits == -np.inf, axis=-1)):
        raise ValueError(f"{name} is -inf everywhere: every state has probability zero")
    return logits


def check_probabilities(probabilities, name: str = "probabilities") -> np.ndarray:
    """Check non-negative, finite probabilities with a positive sum; return their logs."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {probabilities.shape}")
    if np.any(~np.isfinite(probabilities)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if np.any(probabilities < 0):
        raise ValueError(f"{name} must be non-negative, got minimum {probabilities.min()}")
    if probabilities.sum() <= 0:
        raise ValueError(f"{name} are all zero: at least one state needs positive probability")
    with np.errstate(divide="ignore"):
        return np.log(probabilities)


def check_positive(value, name: str) -> float:
    """A finite, strictly positive number (temperature, envelope, step size...)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_int(value, name: str, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_uniforms(uniforms, num_uniforms: int, name: str = "uniforms") -> np.ndarray:
    """Uniforms for one step: at least ``num_uniforms`` values in the open interval (0, 1)."""
    uniforms = np.asarray(uniforms, dtype=np.float64)
    if uniforms.ndim == 0 or uniforms.shape[-1] != num_uniforms:
        raise ValueError(f"{name} must have last dimension {num_uniforms}, got shape {uniforms.shape}")
    if np.any(~(uniforms > 0)) or np.any(~(uniforms < 1)):
        raise ValueError(f"{name} must lie in the open interval (0, 1)")
    return uniforms
