"""``textsampling generate`` stopped as by Ctrl-C once a given step is written, in every process.

For tests/test_generate_distributed.py, which starts it under torchrun to leave the shard files of an
interrupted several-process run: ``torchrun ... tests/interrupted_generate.py STEP <generate options>``.
Each process exits with status 130, as after Ctrl-C.
"""

import sys

from textsampling import cli
from textsampling.cli import generate


def main(argv) -> int:
    step, *options = argv
    real_execute = generate.execute

    def interrupted_execute(args, **models):
        return real_execute(args, interrupt_after_step=int(step), **models)

    generate.execute = interrupted_execute
    return cli.main(["generate", *options])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
