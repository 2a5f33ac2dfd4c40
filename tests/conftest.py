"""Suite-wide settings: offline by default, GPU tests skipped without a GPU."""

import os

# The Hugging Face hub is never contacted by the tests: a miss fails at once instead of after a timeout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

# pytest-xdist already runs one worker per core: a second OpenMP thread per worker only contends
# (small tensor operations were measured up to 50x slower on the 2-core CI machine).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
