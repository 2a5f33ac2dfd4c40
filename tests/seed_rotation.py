"""Pytest plugin for `make flake`: rotate the seeds of the suite's NumPy generators.

Loaded with ``-p seed_rotation`` (``tests/`` on ``PYTHONPATH``; ``scripts/flake.py`` does both). With
``TEXTSAMPLING_SEED_OFFSET=k`` every ``numpy.random.default_rng(seed)`` called with an integer seed
while a test runs (in the test or in the library under it: ``check_step``'s seed too) gets
``seed + k * 1_000_003`` instead: the same test on fresh randomness. Generators made at import time
(module-level targets built from a seed) are not rotated: the claim under test stays the same. Offset 0
(the default, and the plugin not loaded) keeps the seeds the tests state. Generators built from anything
else (``None``, a ``SeedSequence``, a ``Generator``) are passed through, and so are the counter-based
uniforms of ``textsampling.randomness`` and ``torch.Generator``s: tests driven only by those are not rotated.

With ``TEXTSAMPLING_SEED_LOG=path`` the node id of every test that built a generator from an integer
seed is appended to ``path``: the tests whose verdict the seed can change.
"""

from __future__ import annotations

import os

import numpy as np

OFFSET = int(os.environ.get("TEXTSAMPLING_SEED_OFFSET", "0"))
STRIDE = 1_000_003
LOG = os.environ.get("TEXTSAMPLING_SEED_LOG")
_original_default_rng = np.random.default_rng
_current_test = {"nodeid": None}
_logged = set()


def _rotated_default_rng(seed=None):
    nodeid = _current_test["nodeid"]
    # Only while a test runs: module-level fixtures (the fixed targets a test file builds at import
    # from a seed) stay as stated, so a rerun tests the same claim on fresh draws.
    if nodeid is not None and isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if LOG and nodeid is not None and nodeid not in _logged:
            _logged.add(nodeid)
            with open(LOG, "a", encoding="utf-8") as log:
                log.write(nodeid + "\n")
        seed = int(seed) + OFFSET * STRIDE
    return _original_default_rng(seed)


np.random.default_rng = _rotated_default_rng


def pytest_runtest_setup(item):
    _current_test["nodeid"] = item.nodeid


def pytest_runtest_teardown(item):
    _current_test["nodeid"] = None
