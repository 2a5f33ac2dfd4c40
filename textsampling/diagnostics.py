r"""MCMC diagnostics, written out for teaching: acceptance rate, autocorrelation, ESS, split R-hat, TV.

A Markov chain's draws are correlated, so ``N`` of them carry less information than ``N``
independent draws. These functions measure how much less, and whether several chains agree.
Conventions follow Stan and ArviZ (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021,
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16:667, arXiv:1903.08008), so the numbers can be cross-checked against
``arviz.ess`` and ``arviz.rhat`` (our tests do).

Notation: ``chains`` has shape ``(C, N)`` — ``C`` chains of ``N`` draws of one scalar quantity
:math:`\theta`. Chain means :math:`\bar\theta_c`, within-chain variances :math:`s_c^2`
(denominator ``N - 1``),

.. math::
    W = \frac1C \sum_c s_c^2, \qquad B = \frac{N}{C - 1} \sum_c (\bar\theta_c - \bar\theta)^2, \qquad
    \widehat{\mathrm{var}}^+ = \frac{N - 1}{N} W + \frac{B}{N}.

* **Autocorrelation** at lag :math:`t`, :math:`\hat\rho_t = \hat\gamma_t / \hat\gamma_0` with the
  biased autocovariance :math:`\hat\gamma_t = \frac1N \sum_{n=0}^{N-1-t} (\theta_n - \bar\theta)
  (\theta_{n+t} - \bar\theta)`, computed in :math:`O(N \log N)` by FFT (zero-padded to avoid
  wrap-around).
* **Effective sample size** :math:`\mathrm{ESS} = C N / \hat\tau` with the integrated autocorrelation
  time :math:`\hat\tau = -1 + 2 \sum_{t \ge 0} \hat\rho_t`, where the multi-chain autocorrelation is
  :math:`\hat\rho_t = 1 - (W - \overline{\hat\gamma_t}) / \widehat{\mathrm{var}}^+` and the sum is
  truncated by Geyer's (1992) *initial monotone sequence*: the pair sums
  :math:`P_k = \hat\rho_{2k} + \hat\rho_{2k+1}` are summed while positive and forced to be
  non-increasing (Geyer 1992, "Practical Markov chain Monte Carlo", Statistical Science 7:473).
  For an AR(1) chain :math:`\theta_{n+1} = \phi\theta_n + \varepsilon_n`, :math:`\rho_t = \phi^t`
  and :math:`\tau = (1 + \phi) / (1 - \phi)`.
* **Split R-hat**: cut each chain in two halves (so a drifting chain disagrees with itself), then
  :math:`\hat R = \sqrt{\widehat{\mathrm{var}}^+ / W}` on the ``2C`` half-chains. Near 1 when the chains
  agree; values above 1.01 signal trouble.
* **Rank normalisation**: replace every draw by :math:`z = \Phi^{-1}((r - 3/8) / (S + 1/4))`, with
  ``r`` its rank among all ``S`` draws (ties averaged; Blom 1958). The "bulk" ESS and the rank R-hat
  are computed on ``z``: they exist for heavy-tailed draws and do not change under monotone maps
  of :math:`\theta`. The rank R-hat is the larger of the bulk value and that of the *folded* draws
  :math:`|\theta - \mathrm{median}|` (which detects chains of different spread).

Chapter references: Gelman et al., *Bayesian Data Analysis* (3rd ed., 2013), §11.4–11.5; part 2
of the series (spaces.ac.cn/archives/8084) on why MCMC draws are correlated.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as scipy_fft
from scipy import stats

from textsampling._validation import check_int

__all__ = [
    "acceptance_rate",
    "autocovariance",
    "autocorrelation",
    "effective_sample_size",
    "split_rhat",
    "empirical_tv_distance",
    "ESS_METHODS",
    "RHAT_METHODS",
]

#: ``"mean"``: ESS of the draws themselves (for the mean); ``"bulk"``: of their rank-normalised values.
ESS_METHODS = ("bulk", "mean")
#: ``"split"``: classic split R-hat; ``"rank"``: rank-normalised split R-hat (max of bulk and folded).
RHAT_METHODS = ("rank", "split")


# ----------------------------------------------------------------------------- input checks
def _as_chains(chains, name: str = "chains", min_draws: int = 4) -> np.ndarray:
    """``chains`` as float64 ``(C, N)`` (a 1-D array is one chain); finite, ``N >= min_draws``."""
    array = np.asarray(chains)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (num_chains, num_draws) or (num_draws,), got {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < min_draws:
        raise ValueError(
            f"{name} must hold at least 1 chain of at least {min_draws} draws, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return array


# ----------------------------------------------------------------------------- acceptance
def acceptance_rate(accepted, axis=None):
    """Fraction of accepted proposals.

    Parameters
    ----------
    accepted : array_like of bool
        One decision per step, e.g. ``MHTrace.accepted``; shape ``(N,)`` or ``(C, N)``.
    axis : int or None
        ``None`` for the overall rate, ``-1`` for one rate per chain.

    Returns
    -------
    float or numpy.ndarray
    """
    accepted = np.asarray(accepted)
    if accepted.dtype != np.bool_:
        raise TypeError(f"accepted must be a boolean array (one decision per step), got dtype {accepted.dtype}")
    if accepted.size == 0:
        raise ValueError("accepted is empty: at least one step is needed for an acceptance rate")
    rate = np.mean(accepted, axis=axis)
    return float(rate) if np.ndim(rate) == 0 else rate


# ----------------------------------------------------------------------------- autocorrelation
def autocovariance(x) -> np.ndarray:
    r"""Biased autocovariance :math:`\hat\gamma_t`, every lag ``0..N-1``, along the last axis (FFT).

    :math:`\hat\gamma_t = \frac1N \sum_{n=0}^{N-1-t} (x_n - \bar x)(x_{n+t} - \bar x)`. The series is
    zero-padded to at least ``2N`` before the transform so the circular correlation the FFT computes
    equals the linear one (Wiener–Khinchin).

    Parameters
    ----------
    x : array_like, shape (..., N)

    Returns
    -------
    numpy.ndarray, shape (..., N)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have at least one draw along its last axis, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite (no NaN or inf)")
    num_draws = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    size = scipy_fft.next_fast_len(2 * num_draws)
    spectrum = np.fft.rfft(centred, n=size, axis=-1)
    # |F|^2 is the transform of the autocorrelation sequence; the first N lags are the linear ones.
    covariance = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=-1)[..., :num_draws]
    return covariance / num_draws


def autocorrelation(x, max_lag: int | None = None) -> np.ndarray:
    r""":math:`\hat\rho_t = \hat\gamma_t / \hat\gamma_0` for lags ``0..max_lag`` (FFT; see :func:`autocovariance`).

    Parameters
    ----------
    x : array_like, shape (..., N)
        One or several chains (draws along the last axis).
    max_lag : int, optional
        Largest lag, ``0 <= max_lag < N``; defaults to ``N - 1``.

    Returns
    -------
    numpy.ndarray, shape (..., max_lag + 1)
        ``rho[..., 0] == 1``. A constant chain has no autocorrelation: NaN (0/0) on purpose.
    """
    covariance = autocovariance(x)
    num_draws = covariance.shape[-1]
    if max_lag is None:
        max_lag = num_draws - 1
    max_lag = check_int(max_lag, "max_lag")
    if max_lag >= num_draws:
        raise ValueError(f"max_lag must be < the number of draws {num_draws}, got {max_lag}")
    variance = covariance[..., :1]
    # A constant chain: 0/0 is NaN on purpose (its autocorrelation is undefined), without a warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        return covariance[..., : max_lag + 1] / variance


# ----------------------------------------------------------------------------- ESS
def _split_chains(chains: np.ndarray) -> np.ndarray:
    """``(C, N) -> (2C, N // 2)``: first and last halves (the middle draw is dropped when N is odd)."""
    half = chains.shape[1] // 2
    return np.concatenate([chains[:, :half], chains[:, chains.shape[1] - half :]], axis=0)


def _rank_normalise(values: np.ndarray) -> np.ndarray:
    r""":math:`\Phi^{-1}((r - 3/8) / (S + 1/4))` with average ranks ``r`` over all ``S`` values (Blom 1958)."""
    ranks = stats.rankdata(values, method="average").reshape(values.shape)
    return stats.norm.ppf((ranks - 0.375) / (values.size + 0.25))


def _ess_of_chains(chains: np.ndarray) -> float:
    """ESS of ``(C, N)`` draws by Geyer's initial monotone sequence (Stan's estimator)."""
    num_chains, num_draws = chains.shape
    if np.ptp(chains) == 0:
        # Every draw identical: no variance to measure, the autocorrelation is 0/0.
        return float("nan")
    covariance = autocovariance(chains)  # (C, N) biased gamma_t per chain
    # W: mean within-chain variance with denominator N - 1.
    within = covariance[:, 0].mean() * num_draws / (num_draws - 1.0)
    # var+ = (N-1)/N W + B/N; B/N is the variance of the chain means (zero for one chain).
    variance_plus = within * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        variance_plus += np.var(chains.mean(axis=1), ddof=1)
    # Multi-chain autocorrelation at every lag.
    rho = 1.0 - (within - covariance.mean(axis=0)) / variance_plus  # (N,)

    # Geyer's initial positive sequence: keep pairs P_k = rho_2k + rho_2k+1 while they are positive.
    kept = np.zeros(num_draws)
    kept[0], kept[1] = 1.0, rho[1]
    t = 1
    rho_even, rho_odd = 1.0, rho[1]
    while t < num_draws - 3 and rho_even + rho_odd > 0.0:
        rho_even, rho_odd = rho[t + 1], rho[t + 2]
        if rho_even + rho_odd >= 0.0:
            kept[t + 1], kept[t + 2] = rho_even, rho_odd
        t += 2
    last = t - 2  # index of the last odd lag of the positive sequence
    # Stan's refinement: a positive last even lag still counts (once).
    if rho_even > 0.0:
        kept[last + 1] = rho_even
    # Initial monotone sequence: a pair may not exceed the pair before it.
    t = 1
    while t <= last - 2:
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
        t += 2
    total = num_chains * num_draws
    tau = -1.0 + 2.0 * np.sum(kept[: last + 1]) + kept[last + 1]
    # Antithetic chains may give tau < 1 (ESS > N); Stan caps the gain at log10(total).
    tau = max(tau, 1.0 / np.log10(total))
    return float(total / tau)


def effective_sample_size(chains, method: str = "bulk") -> float:
    r"""Effective sample size of ``C`` chains of one scalar quantity (Stan/ArviZ conventions).

    .. math::
        \mathrm{ESS} = \frac{C N}{\hat\tau}, \qquad
        \hat\tau = -1 + 2 \sum_{t=0}^{2m+1} \hat\rho_t, \qquad
        \hat\rho_t = 1 - \frac{W - \overline{\hat\gamma_t}}{\widehat{\mathrm{var}}^+},

    the sum truncated by Geyer's initial monotone sequence (see the module docstring). Both methods
    first split every chain in two halves, as ArviZ does.

    Parameters
    ----------
    chains : array_like, shape (C, N) or (N,)
        Draws of one scalar quantity; ``N >= 4``.
    method : {"bulk", "mean"}
        ``"mean"``: the ESS of the draws themselves (the one that sets the Monte Carlo error of
        their mean, ``sd / sqrt(ESS)``); ``"bulk"``: of their rank-normalised values (robust to
        heavy tails, invariant under monotone transformations). Equal to ``arviz.ess(...,
        method=...)``.

    Returns
    -------
    float
        About ``C N`` for independent draws, :math:`C N (1 - \phi) / (1 + \phi)` for AR(1) chains;
        at most :math:`C N \log_{10}(C N)`. NaN when every draw is the same value (no variance).
    """
    if method not in ESS_METHODS:
        raise ValueError(f"method must be one of {ESS_METHODS}, got {method!r}")
    split = _split_chains(_as_chains(chains))
    if method == "bulk":
        if np.ptp(split) == 0:
            return float("nan")
        split = _rank_normalise(split)
    return _ess_of_chains(split)


# ----------------------------------------------------------------------------- R-hat
def _rhat_of_chains(chains: np.ndarray) -> float:
    r""":math:`\sqrt{\widehat{\mathrm{var}}^+ / W}` on ``(C, N)`` draws (no splitting here)."""
    num_draws = chains.shape[1]
    within = np.mean(np.var(chains, axis=1, ddof=1))
    between_over_n = np.var(chains.mean(axis=1), ddof=1)  # B / N
    if within == 0:
        return float("nan")  # constant chains: R-hat is 0/0
    return float(np.sqrt(((num_draws - 1.0) / num_draws * within + between_over_n) / within))


def split_rhat(chains, method: str = "rank") -> float:
    r"""Split :math:`\hat R` of ``C`` chains of one scalar quantity.

    .. math::
        \hat R = \sqrt{\frac{\widehat{\mathrm{var}}^+}{W}}
        = \sqrt{\frac{N - 1}{N} + \frac{B}{N W}}

    computed on the ``2C`` half-chains (``N`` then the half length). Gelman & Rubin (1992),
    Statistical Science 7:457; Vehtari et al. (2021) for the rank version.

    Parameters
    ----------
    chains : array_like, shape (C, N) or (N,)
        ``N >= 4``; a single chain is split into two, which still detects a drift.
    method : {"rank", "split"}
        ``"split"``: the classic split R-hat of the draws (``arviz.rhat(..., method="split")``);
        ``"rank"``: the larger of the split R-hat of the rank-normalised draws and of the
        rank-normalised folded draws :math:`|\theta - \mathrm{median}(\theta)|`
        (``arviz.rhat(..., method="rank")``, the default in ArviZ and Stan).

    Returns
    -------
    float
        Close to 1 when the chains agree (use 1.01 as the alarm threshold); NaN when every draw of a
        half-chain set is the same value.
    """
    if method not in RHAT_METHODS:
        raise ValueError(f"method must be one of {RHAT_METHODS}, got {method!r}")
    split = _split_chains(_as_chains(chains))
    if method == "split":
        return _rhat_of_chains(split)
    if np.ptp(split) == 0:
        return float("nan")
    bulk = _rhat_of_chains(_rank_normalise(split))
    folded = np.abs(split - np.median(split))
    tail = _rhat_of_chains(_rank_normalise(folded))
    return float(max(bulk, tail))


# ----------------------------------------------------------------------------- TV to an exact law
def empirical_tv_distance(sample_indices, probabilities) -> float:
    r"""Total-variation distance between the histogram of ``sample_indices`` and exact ``probabilities``.

    .. math::
        \mathrm{TV}(\hat p, \pi) = \frac12 \sum_k \Bigl|\frac{n_k}{N} - \pi_k\Bigr|.

    Even for exact samples this is not zero: about :math:`\sum_k \sqrt{\pi_k (1 - \pi_k) / (2 \pi N)}`
    for large ``N``, so compare it with the same quantity for exact draws rather than with 0.

    Parameters
    ----------
    sample_indices : array_like of int, shape (N,)
        Index of each sample's state (or cell), e.g. ``target.state_index(samples)``.
    probabilities : array_like, shape (K,)
        Exact probabilities of the ``K`` states; non-negative, summing to 1.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D array, got shape {probabilities.shape}")
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError("probabilities must be finite and non-negative")
    if abs(probabilities.sum() - 1.0) > 1e-9:
        raise ValueError(f"probabilities must sum to 1, got {probabilities.sum()!r}")
    indices = np.asarray(sample_indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"sample_indices must hold integers, got dtype {indices.dtype}")
    indices = indices.reshape(-1)
    if indices.size == 0:
        raise ValueError("sample_indices is empty: at least one sample is needed")
    if np.any((indices < 0) | (indices >= probabilities.size)):
        raise ValueError(f"sample_indices must lie in 0..{probabilities.size - 1} (one per state)")
    frequencies = np.bincount(indices, minlength=probabilities.size) / indices.size
    return float(0.5 * np.sum(np.abs(frequencies - probabilities)))
