"""The README's usage example runs as printed."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    assert "TV to the exact law" in capsys.readouterr().out


ROOT = README.parent


def test_readme_says_how_to_get_the_commands_on_the_path():
    text = README.read_text()
    assert ". .venv/bin/activate" in text
    # ...right after the two set-up commands, before the first `textsampling` command.
    assert text.index(". .venv/bin/activate") < text.index("textsampling check ")


def test_every_make_target_the_readme_names_exists():
    targets = sorted(set(re.findall(r"(?:`|^)make ([a-z][a-z-]*)", README.read_text(), flags=re.M)))
    assert {"demo", "test", "book", "jupyter", "lock", "flake", "test-latest"} <= set(targets)
    for target in targets:
        dry_run = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry_run.returncode == 0, (target, dry_run.stderr)


def test_readme_check_command_runs_as_written(tmp_path):
    # The command exactly as printed, with `textsampling` of this environment (what activating
    # .venv gives), run where `examples/` is, as from the repository root; the plot lands there.
    commands = re.findall(r"^textsampling check .*$", README.read_text(), flags=re.M)
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0])
    assert argv[2] == "examples/my_step.py:my_step"
    executable = Path(sys.executable).parent / "textsampling"
    assert executable.exists(), "the package's console script is missing: reinstall with `make install`"
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    completed = subprocess.run([str(executable), *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                               timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "verdict: PASSES" in completed.stdout
    assert (tmp_path / "misfit.png").stat().st_size > 0
