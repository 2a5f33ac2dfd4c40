"""``textsampling evaluate``: quality and diversity of generated texts, reported as the papers report them.

Reads each FILE — a ``samples.jsonl`` written by ``textsampling generate`` (a name ending in ``.jsonl``)
or plain text, one sentence per line (blank lines skipped) — and prints one table, a column per file:

* BLEU against each ``--references`` file: every sentence against *all* reference sentences, NLTK's
  ``corpus_bleu`` (Yu et al. 2017; Wang & Cho 2019), or sacrebleu's with ``--bleu-convention sacrebleu``;
* self-BLEU in each ``--convention``: ``wang-cho`` (NLTK corpus BLEU of each sentence against all the
  others, bert-gen's notebook), ``texygen`` (mean NLTK sentence BLEU with smoothing method 1 against
  the others, Zhu et al. 2018), ``sacrebleu`` (mean sacrebleu sentence BLEU, what ``generate`` writes
  to metrics.json);
* % unique n-grams (n = 1..4) within the samples and against each reference file (Wang & Cho's
  definitions: n-grams seen once / all n-grams; distinct n-grams absent from the references / all
  n-grams), distinct-1 and distinct-2 (%), mean length in tokens;
* perplexity under a scoring causal LM (``--model``, default the built-in tiny-shakespeare; ``--no-perplexity``
  to skip): the sentences are encoded with that model's tokenizer; those it cannot score (longer than
  its context, or holding [UNK]) are left out and counted. A perplexity compares runs under the same
  scoring model only.

From a samples.jsonl, each chain's final record (its largest step) is one sentence, as ``generate``
reports a chain (for ``anneal``, whose metrics.json takes each chain's best sentence, this is the one at
the final temperature); ``--all-records`` takes every record instead. Sentences are split on whitespace
(``--tokenize 13a`` for sacrebleu's tokenizer) and compared case-sensitively unless ``--lowercase``.

``--json`` prints the same numbers as JSON instead of the table (``--json PATH`` writes them to PATH and
prints the table); NaN (no n-gram of that order) is written as null. The same in Python:
``textsampling.metrics.evaluate(texts, references={...})``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from textsampling.metrics import REFERENCE_BLEU_CONVENTIONS, SELF_BLEU_CONVENTIONS, TOKENIZERS, evaluate

__all__ = ["add_arguments", "run", "read_texts", "format_table"]

DEFAULT_CONVENTIONS = "wang-cho,texygen"
UNIQUE_ORDERS = (1, 2, 3, 4)


def read_texts(path, all_records: bool = False) -> list:
    """The sentences of one file: a ``generate`` samples.jsonl (``.jsonl``) or one sentence per line.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A samples.jsonl line that is not a JSON object with ``text`` (and ``chain``, ``step`` unless
        ``all_records``), naming the line; a file without any sentence.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix != ".jsonl":
        texts = [line.strip() for line in lines if line.strip()]
    else:
        final = {}
        texts = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}, line {number}: not JSON (a samples.jsonl holds one JSON record a "
                                 "line; name a plain text file otherwise than .jsonl)") from None
            needed = ("text",) if all_records else ("text", "chain", "step")
            if not isinstance(record, dict) or any(key not in record for key in needed):
                raise ValueError(f"{path}, line {number}: a record needs the fields {', '.join(needed)} "
                                 "(as textsampling generate writes them)")
            if not isinstance(record["text"], str):
                raise ValueError(f"{path}, line {number}: text must be a string, got {record['text']!r}")
            if all_records:
                texts.append(record["text"])
            elif record["chain"] not in final or record["step"] >= final[record["chain"]]["step"]:
                final[record["chain"]] = record
        if not all_records:
            # chains in numeric order (0, 1, ..., 10), whatever their order in the file
            chains = sorted(final, key=lambda chain: (not isinstance(chain, int), chain if isinstance(chain, int) else
                                                      str(chain)))
            texts = [final[chain]["text"] for chain in chains]
    if not texts:
        raise ValueError(f"{path} holds no sentence")
    return texts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``textsampling evaluate`` (called by :func:`textsampling.cli.main`)."""
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="samples.jsonl of textsampling generate (of --sampler smc: every particle's text, weights "
                             "ignored), or text with one sentence per line")
    parser.add_argument("--references", nargs="+", default=[], metavar="FILE",
                        help="reference corpora, one sentence per line: BLEU and %% unique n-grams against each")
    parser.add_argument("--convention", default=DEFAULT_CONVENTIONS,
                        help=f"self-BLEU conventions, comma-separated, among {', '.join(SELF_BLEU_CONVENTIONS)} "
                             f"(default: {DEFAULT_CONVENTIONS})")
    parser.add_argument("--bleu-convention", default="nltk", choices=tuple(REFERENCE_BLEU_CONVENTIONS),
                        help="BLEU against the references: NLTK corpus_bleu (Wang & Cho) or sacrebleu (default: nltk)")
    parser.add_argument("--tokenize", default="whitespace", choices=TOKENIZERS,
                        help="split sentences on whitespace, or with sacrebleu's 13a tokenizer (default: whitespace)")
    parser.add_argument("--lowercase", action="store_true", help="lower-case every sentence first")
    parser.add_argument("--all-records", action="store_true",
                        help="samples.jsonl: every record, not only each chain's final one")
    parser.add_argument("--max-order", type=int, default=4, help="BLEU-N (default: 4)")
    parser.add_argument("--model", default="tiny-shakespeare",
                        help="scoring causal LM for perplexity: tiny-shakespeare or a local checkpoint folder "
                             "(default: tiny-shakespeare)")
    parser.add_argument("--no-perplexity", action="store_true", help="skip perplexity (no model is loaded)")
    parser.add_argument("--device", default="cpu", help="device of the scoring model (default: cpu)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="print JSON instead of the table; with PATH, write the JSON there and print the table")


def _conventions(text) -> list:
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in names if name not in SELF_BLEU_CONVENTIONS]
    if not names or unknown:
        raise ValueError(f"--convention takes self-BLEU conventions among {', '.join(SELF_BLEU_CONVENTIONS)}, "
                         f"comma-separated; got {text!r}")
    return names


def _reference_names(paths) -> dict:
    """Each reference file's name (its file name; its path if two share one) -> path."""
    names = [Path(p).name for p in paths]
    return {(Path(p).name if names.count(Path(p).name) == 1 else str(p)): p for p in paths}


def _without_nan(value):
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _cell(value, scale=1.0, digits=2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value * scale:.{digits}f}"


def format_table(results: dict, model_name=None) -> str:
    """The table of :func:`run`: a row per metric, a column per evaluated file (``results``: file -> dict)."""
    files = list(results)
    first = results[files[0]]
    rows = [("sentences", [_cell(r["num_texts"]) for r in results.values()]),
            ("mean length (tokens)", [_cell(r["mean_length"]) for r in results.values()])]
    for n in first["distinct"]:
        rows.append((f"distinct-{n} (%)", [_cell(r["distinct"][n], 100) for r in results.values()]))
    for convention in first["self_bleu"]:
        rows.append((f"self-BLEU, {convention}", [_cell(r["self_bleu"][convention]) for r in results.values()]))
    for name in first["bleu"]:
        label = f"BLEU vs {name} ({first['bleu_convention']})"
        rows.append((label, [_cell(r["bleu"][name]) for r in results.values()]))
    for where in first["unique_ngrams"]:
        label = "within the samples" if where == "self" else f"vs {where}"
        for n in first["unique_ngrams"][where]:
            rows.append((f"% unique {n}-grams {label}", [_cell(r["unique_ngrams"][where][n], 100)
                                                         for r in results.values()]))
    if first["perplexity"] is not None:
        rows.append((f"perplexity ({model_name}; ours, not the paper's GPT)",
                     [_cell(r["perplexity"]["value"]) for r in results.values()]))
        rows.append(("  sentences scored / skipped", [f"{r['perplexity']['num_scored']} / "
                                                      f"{r['perplexity']['num_skipped']}" for r in results.values()]))
    headers = [f"[{i + 1}]" for i in range(len(files))]
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(h), *(len(cells[i]) for _, cells in rows)) for i, h in enumerate(headers)]
    lines = [" | ".join(["metric".ljust(label_width)] + [h.rjust(w) for h, w in zip(headers, widths)])]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(" | ".join([label.ljust(label_width)] + [c.rjust(w) for c, w in zip(cells, widths)]))
    lines.append("")
    lines += [f"[{i + 1}] {name}" for i, name in enumerate(files)]
    lines.append(f"tokens: {first['tokenize']}{', lower-cased' if first['lowercase'] else ''}; BLEU in [0, 100]")
    for convention in first["self_bleu"]:
        lines.append(f"self-BLEU {convention}: {SELF_BLEU_CONVENTIONS[convention]}")
    if first["bleu"]:
        convention = first["bleu_convention"]
        lines.append(f"BLEU vs references ({convention}): {REFERENCE_BLEU_CONVENTIONS[convention]}")
    return "\n".join(lines)


def _evaluate_quietly(samples, references, causal_lm, conventions, args) -> dict:
    """:func:`~textsampling.metrics.evaluate` of each file; transformers' "sequence longer than the
    maximum" notice silenced while encoding (such sentences are left out of the perplexity and counted)."""
    verbosity = None
    if causal_lm is not None:
        from transformers.utils import logging as transformers_logging

        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
    try:
        return {
            path: evaluate(texts, references, causal_lm=causal_lm, model_name=None if causal_lm is None else args.model,
                           self_bleu_conventions=conventions, bleu_convention=args.bleu_convention,
                           unique_orders=UNIQUE_ORDERS, max_order=args.max_order, tokenize=args.tokenize,
                           lowercase=args.lowercase)
            for path, texts in samples.items()
        }
    finally:
        if verbosity is not None:
            transformers_logging.set_verbosity(verbosity)


def run(args) -> int:
    """Run ``textsampling evaluate``: read, compute, print the table (or the JSON). Bad input: ValueError."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    conventions = _conventions(args.convention)
    if not isinstance(args.max_order, int) or args.max_order < 1:
        raise ValueError(f"--max-order must be an integer >= 1, got {args.max_order!r}")
    samples = {str(path): read_texts(path, args.all_records) for path in args.files}
    for path, texts in samples.items():
        if len(texts) < 2:
            raise ValueError(f"{path} holds {len(texts)} sentence: self-BLEU needs at least 2 (with a samples.jsonl "
                             "of one chain, try --all-records)")
    references = {name: read_texts(path) for name, path in _reference_names(args.references).items()}
    causal_lm = None
    if not args.no_perplexity:
        from textsampling.lm.loading import load_causal_lm

        causal_lm = load_causal_lm(args.model, device=args.device)
    results = _evaluate_quietly(samples, references, causal_lm, conventions, args)
    reference_paths = {name: str(path) for name, path in _reference_names(args.references).items()}
    document = json.dumps({"files": _without_nan(results), "references": reference_paths,
                           "all_records": args.all_records}, indent=2)
    if args.json == "-":
        print(document)
        return 0
    if args.json:
        Path(args.json).write_text(document + "\n")
    print(format_table(results, args.model))
    if args.json:
        print(f"JSON written to {args.json}")
    return 0


def main(argv=None) -> int:
    """Entry point, as ``textsampling evaluate``."""
    from textsampling import cli

    return cli.main(["evaluate", *(sys.argv[1:] if argv is None else argv)])
