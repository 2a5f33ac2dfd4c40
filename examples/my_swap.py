"""The swap step the README checks: `textsampling check examples/my_swap.py:my_swap --kind pt-swap ...`.

Parallel tempering (Swendsen & Wang 1986; Geyer 1991) keeps replicas at temperatures
``T_0 < T_1 < ...`` and now and then offers neighbours ``(i, i+1)`` to exchange their states, accepted
with probability :math:`\\min\\bigl(1, (\\rho(x_{i+1}) / \\rho(x_i))^{1/T_i - 1/T_{i+1}}\\bigr)`: the
Metropolis ratio of the product :math:`\\prod_m \\rho(x_m)^{1/T_m}` for the exchange. This one is the
stochastic even–odd swap, written as a user would write it: ``uniforms[0]`` picks the even pairs
(0,1), (2,3), ... or the odd ones (1,2), (3,4), ...; ``uniforms[1 + i]`` decides pair ``i``.
``state.log_prob`` holds each replica's *untempered* :math:`\\log\\rho`, and moves with its state.
Copy it, break it (drop the factor ``1/T_i - 1/T_{i+1}``, or compare tempered log-densities) and
watch the check fail.
"""

import numpy as np


def my_swap(uniforms, state, *, temperatures):
    """One swap step of the replicas in ``state`` (``state.x``: one row per replica, coldest first)."""
    x, log_prob = np.array(state.x), np.array(state.log_prob, dtype=np.float64)
    inverse = 1.0 / np.asarray(temperatures, dtype=np.float64)
    first = 0 if uniforms[0] < 0.5 else 1  # the even pairs or the odd ones, each with probability 1/2
    for i in range(first, len(x) - 1, 2):  # disjoint pairs: each decides on the states the step was given
        log_ratio = (inverse[i] - inverse[i + 1]) * (log_prob[i + 1] - log_prob[i])
        # Accept iff log u < log ratio; a NaN ratio (both at -inf) compares False: rejected.
        with np.errstate(invalid="ignore"):
            if np.log(uniforms[1 + i]) < log_ratio:
                x[[i, i + 1]] = x[[i + 1, i]]
                log_prob[[i, i + 1]] = log_prob[[i + 1, i]]
    return state._replace(x=x, log_prob=log_prob)
