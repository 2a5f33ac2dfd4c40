"""The step function the README checks: `textsampling check examples/my_step.py:my_step --kind mh ...`.

One Metropolis–Hastings step (Metropolis et al. 1953; Hastings 1970, Biometrika 57:97), written as a
user would write it: propose ``y`` by redrawing one uniformly chosen position of ``x`` with a
uniformly drawn token (or, for a single-token target, a uniformly drawn state), and accept it with
probability :math:`\\min(1, \\rho(y) / \\rho(x))`. The proposal is symmetric, :math:`q(y \\mid x) =
q(x \\mid y)`, so the Hastings term is zero. Everything is in log space, and all randomness comes
from ``rng``. Copy it, break it (drop the ``log`` of the uniform, say) and watch the check fail.
"""

import numpy as np


def my_step(rng, x, target):
    """One MH step from ``x`` on ``target`` (``target.log_prob`` takes a batch of states)."""
    x = np.asarray(x)
    if x.ndim == 0:  # a categorical target: the state is one of target.num_states cells
        y = np.asarray(rng.integers(target.num_states))
    else:  # a sequence target: redraw one position
        y = x.copy()
        y[rng.integers(x.shape[0])] = rng.integers(target.vocab_size)
    log_ratio = target.log_prob(y[None])[0] - target.log_prob(x[None])[0]
    # Accept iff log u < log rho(y) - log rho(x); u = 0 has log -inf and always accepts, correctly.
    with np.errstate(divide="ignore"):
        accept = np.log(rng.random()) < log_ratio
    return y if accept else x
