"""The console script asks torch's CPU allocator for huge pages, unless told otherwise or too late."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
{before}
from textsampling.cli import prefer_huge_pages
print(prefer_huge_pages(), os.environ.get("THP_MEM_ALLOC_ENABLE"))
"""


def _run(before: str = "", **environment) -> str:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env.update(environment)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(before=before)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_set_when_unset_and_torch_not_imported():
    assert _run() == "True 1"


@pytest.mark.parametrize("value", ["0", "1"])
def test_the_users_choice_is_kept(value):
    assert _run(THP_MEM_ALLOC_ENABLE=value) == f"False {value}"


def test_left_alone_once_torch_is_imported():
    # torch has read the variable already: setting it now would claim an effect it cannot have
    assert _run(before="import torch") == "False None"


def test_the_console_script_does_not_import_torch_before_setting_it():
    # main() sets it first; `textsampling show --help` must not have imported torch on the way there
    script = (
        "import sys\nfrom textsampling import cli\n"
        "try:\n    cli.main(['show', '--help'])\nexcept SystemExit:\n    pass\n"
        "import os\nprint(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1"
