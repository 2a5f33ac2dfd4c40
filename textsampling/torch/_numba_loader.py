"""Load one of the package's numba loops on first use, once per process, and remember why it could not be.

numba is an optional dependency (``pip install "textsampling[fast]"``): the modules that hold the loops
(:mod:`textsampling.torch._philox_numba`, :mod:`textsampling.torch._metropolis_hastings_numba`) import
it at their top, so the samplers import those modules only through :func:`load_once`, and use the torch
operations, which give the same results, where it returns False.
"""

from __future__ import annotations

import warnings

__all__ = ["load_once"]


def load_once(state: dict, import_loop, what: str, fallback: str) -> bool:
    """Whether the loop module is loaded: import it with ``import_loop()`` the first time only.

    Parameters
    ----------
    state : dict with keys ``"module"`` and ``"failed"``
        The caller's record: the module once imported; otherwise why it could not be (``None`` before the
        first try). Tests and ``without_numba()`` switch a loop off by writing into it.
    import_loop : callable, no arguments
        Imports and returns the module (an import statement in the caller's own module).
    what, fallback : str
        For the warning where the module is installed but broken: "``what`` could not be loaded
        (reason); ``fallback``".

    Notes
    -----
    An ImportError (numba not installed) is silent: an optional extra is missing. Any other exception
    (numba raises more than ImportError, e.g. a cache it cannot write) warns once, naming the reason, at
    the line that called the caller (``stacklevel=3``: call it directly from the function users call,
    ``numba_kernel_available``).
    """
    if state["module"] is None and state["failed"] is None:
        try:
            module = import_loop()
        except ImportError as error:  # not installed: the torch operations, silently (an optional extra)
            state["failed"] = f"{type(error).__name__}: {error}"
        except Exception as error:  # installed but broken: say so once
            state["failed"] = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            warnings.warn(f"{what} could not be loaded ({state['failed']}); {fallback}", stacklevel=3)
        else:
            state["module"] = module
    return state["module"] is not None
