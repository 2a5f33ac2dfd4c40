"""Reproduce Wang & Cho (2019)'s quality and diversity table from bert-gen's released samples.

Wang & Cho, "BERT has a Mouth, and It Must Speak: BERT as a Markov Random Field Language Model"
(arXiv:1902.04094) compare 1,000 samples each of BERT-large, BERT-base (Gibbs sampling, length 40,
burn-in 250, top-k 100) and GPT with WikiText-103 and Toronto Book Corpus text: BLEU against each
corpus (quality) and self-BLEU and % unique n-grams (diversity). This script computes that table with
``textsampling.metrics`` from the files their repository releases, and prints it next to the
published figures, with the difference per cell and the largest one.

Usage (the data are the user's, fetched from github.com/nyu-dl/bert-gen, never committed here)::

    git clone https://github.com/nyu-dl/bert-gen && python scripts/reproduce_wang_cho.py --data bert-gen/data

``--data DIR`` holds ``bert-large-uncased-len40-burnin250-topk100-temp1.000.txt``,
``bert-base-uncased-len40-burnin250-topk100-temp1.000.txt``, ``gpt-len40-topk100-temp1.000.txt``,
``wiki103.5k.txt`` and ``tbc.5k.txt``.

Preparation, as the notebook ``bert-babble.ipynb`` (Evaluation section) does it:

* samples: each line split on whitespace, nothing else (no lower-casing, no detokenisation);
* WT103 references: lower-cased, ``@@unknown@@`` -> ``[UNK]`` (``prepare_wiki``);
* TBC references: lower-cased, two backquotes and two single quotes -> ``"`` (``prepare_tbc``);
* BLEU: NLTK ``corpus_bleu`` of every sample against *all* 5,000 sentences of the corpus
  (``convention="nltk"``); self-BLEU: the ``wang-cho`` convention (each sample against the other
  999); % unique n-grams: the notebook's ``self_unique_ngrams`` and ``ref_unique_ngrams``.

The corpus rows (WT103 and TBC as "models"): the paper gives them, the repository does not say how.
Here a corpus row is its first ``--corpus-samples`` (1,000) prepared lines, scored exactly like a model,
except that against its *own* corpus the references are the remaining 4,000 lines (against all 5,000 the
BLEU would be 100: each line would find itself). These rows are ours; no published figure is compared.

Published figures. Verified, from the saved outputs of ``bert-babble.ipynb`` in github.com/nyu-dl/bert-gen
(the notebook that produced the released BERT-base file; read for this script): BERT-base self-BLEU 10.06;
BERT-base % unique n-grams vs WT103 57.90 / 91.72 / 98.55 and vs TBC 60.94 / 92.04 / 98.56 (n = 2, 3,
4); BERT-base BLEU vs WT103 7.80 and vs TBC 7.06. Every other cell of the paper's table (its Table 2 in
the corrected arXiv version) could not be retrieved and checked in the session that wrote this script,
and is printed as "n/a (not verified)" rather than typed from memory.

Perplexity: the paper scores the samples with GPT; the package's built-in scoring model
(tiny-shakespeare) is another model with another vocabulary, so no perplexity is compared here
(``textsampling evaluate`` prints ours, labelled as such).

Why the numbers differ (the closing note the script prints): the metrics are not in question — each is
checked against NLTK's ``corpus_bleu`` (to 1e-12) and the notebook's own n-gram code (exactly) in
``tests/test_metrics.py`` — the sentences are. The notebook's outputs were computed on sentences *in
memory* that cannot be rebuilt from the release: (1) in the generation session, ``bert_sents`` were BERT
word pieces with ``[CLS]`` and ``[SEP]`` (``untokenize_batch``), and the released file holds them after
``detokenize`` (pieces merged, markers dropped); (2) the saved outputs mix kernel sessions: two cells
carry execution count 8, and the % unique n-gram cell printed "Unique 2-grams relative to Wiki" while its
source now prints "BERT unique ..." (edited after it ran), so the evaluated sentences may even be another
draw. ``--with-cls-sep`` puts the two markers back, to show how much of the gap they move; the word pieces
need BERT's vocabulary to restore.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textsampling import metrics  # noqa: E402

MODEL_FILES = {
    "BERT (large)": "bert-large-uncased-len40-burnin250-topk100-temp1.000.txt",
    "BERT (base)": "bert-base-uncased-len40-burnin250-topk100-temp1.000.txt",
    "GPT": "gpt-len40-topk100-temp1.000.txt",
}
CORPUS_FILES = {"WT103": "wiki103.5k.txt", "TBC": "tbc.5k.txt"}
#: the notebook's replacements, after lower-casing (prepare_wiki, prepare_tbc)
REPLACEMENTS = {"WT103": {"@@unknown@@": "[UNK]"}, "TBC": {"``": '"', "''": '"'}}
ORDERS = (2, 3, 4)
COLUMNS = (
    [("bleu:WT103", "BLEU WT103"), ("bleu:TBC", "BLEU TBC"), ("self_bleu", "self-BLEU")]
    + [(f"unique:self:{n}", f"self n={n}") for n in ORDERS]
    + [(f"unique:WT103:{n}", f"WT103 n={n}") for n in ORDERS]
    + [(f"unique:TBC:{n}", f"TBC n={n}") for n in ORDERS]
)
NOTEBOOK = "bert-babble.ipynb saved output"
#: (row, column) -> (figure, source). Only figures read in their source; see the module docstring.
PUBLISHED = {
    ("BERT (base)", "self_bleu"): (10.06, NOTEBOOK),
    ("BERT (base)", "bleu:WT103"): (7.80, NOTEBOOK),
    ("BERT (base)", "bleu:TBC"): (7.06, NOTEBOOK),
    ("BERT (base)", "unique:WT103:2"): (57.90, NOTEBOOK),
    ("BERT (base)", "unique:WT103:3"): (91.72, NOTEBOOK),
    ("BERT (base)", "unique:WT103:4"): (98.55, NOTEBOOK),
    ("BERT (base)", "unique:TBC:2"): (60.94, NOTEBOOK),
    ("BERT (base)", "unique:TBC:3"): (92.04, NOTEBOOK),
    ("BERT (base)", "unique:TBC:4"): (98.56, NOTEBOOK),
}
NOT_VERIFIED = "n/a (not verified)"


def read_lines(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (--data must be bert-gen's data/ folder, holding "
                                f"{', '.join(list(MODEL_FILES.values()) + list(CORPUS_FILES.values()))})")
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def prepare_corpus(lines, name: str) -> list:
    """The notebook's prepare_wiki / prepare_tbc: lower-case every token, then its replacements."""
    replacements = REPLACEMENTS[name]
    return [[replacements.get(token.lower(), token.lower()) for token in line] for line in lines]


def table_row(samples, corpora: dict) -> dict:
    """One row of the table (values in %, BLEU in [0, 100]) for ``samples`` against ``corpora``."""
    row = {"self_bleu": metrics.self_bleu(samples, "wang-cho")}
    for n in ORDERS:
        row[f"unique:self:{n}"] = 100 * metrics.unique_ngrams(samples, n)
    for name, corpus in corpora.items():
        row[f"bleu:{name}"] = metrics.reference_corpus_bleu(samples, corpus, convention="nltk")
        for n in ORDERS:
            row[f"unique:{name}:{n}"] = 100 * metrics.unique_ngrams(samples, n, corpus)
    return row


def compute(data: Path, corpus_samples: int = 1000, with_cls_sep: bool = False) -> dict:
    """The whole table: row name -> column key -> value (models first, then the corpus rows)."""
    corpora = {name: prepare_corpus(read_lines(data / file), name) for name, file in CORPUS_FILES.items()}
    for name, corpus in corpora.items():
        if len(corpus) <= corpus_samples:
            raise ValueError(f"{CORPUS_FILES[name]} has {len(corpus)} lines: the {name} row needs more than "
                             f"--corpus-samples {corpus_samples} (the rest are its references)")
    table = {}
    for model, file in MODEL_FILES.items():
        samples = read_lines(data / file)
        if with_cls_sep and model.startswith("BERT"):
            samples = [["[CLS]", *line, "[SEP]"] for line in samples]
        table[model] = table_row(samples, corpora)
    for name, corpus in corpora.items():
        own = {other: (corpus[corpus_samples:] if other == name else corpora[other]) for other in corpora}
        table[name] = table_row(corpus[:corpus_samples], own)
    return table


def format_tables(table: dict) -> tuple:
    """(ours, published, difference) as text, and the largest |difference| with its cell (or None)."""
    width = max(len(header) for _, header in COLUMNS) + 1
    label = max(len(row) for row in table) + 1

    def render(title, cell):
        lines = [title, f"{'':{label}}" + "".join(f"{header:>{width}}" for _, header in COLUMNS)]
        for row in table:
            lines.append(f"{row:{label}}" + "".join(f"{cell(row, key):>{width}}" for key, _ in COLUMNS))
        return "\n".join(lines)

    ours = render("ours (textsampling.metrics on the released files):",
                  lambda row, key: f"{table[row][key]:.2f}")
    published = render(f"published (n/a = {NOT_VERIFIED}):",
                       lambda row, key: f"{PUBLISHED[(row, key)][0]:.2f}" if (row, key) in PUBLISHED else "n/a")
    difference = render("ours - published:",
                        lambda row, key: f"{table[row][key] - PUBLISHED[(row, key)][0]:+.2f}"
                        if (row, key) in PUBLISHED else "n/a")
    largest = None
    for (row, key), (figure, _) in PUBLISHED.items():
        gap = table[row][key] - figure
        if largest is None or abs(gap) > abs(largest[0]):
            largest = (gap, row, dict(COLUMNS)[key])
    return ours, published, difference, largest


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="bert-gen's data/ folder")
    parser.add_argument("--corpus-samples", type=int, default=1000,
                        help="lines of each corpus scored as its row (default: 1000)")
    parser.add_argument("--with-cls-sep", action="store_true",
                        help="wrap the BERT samples in [CLS] ... [SEP], as the notebook's in-memory sentences were")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = compute(args.data, args.corpus_samples, args.with_cls_sep)
    seconds = time.perf_counter() - start
    ours, published, difference, largest = format_tables(table)
    print("Wang & Cho (2019), arXiv:1902.04094: quality (BLEU vs WT103 / TBC, NLTK corpus_bleu) and diversity "
          "(self-BLEU wang-cho; % unique n-grams within the samples and vs WT103 / TBC)")
    if args.with_cls_sep:
        print("BERT samples wrapped in [CLS] ... [SEP] (--with-cls-sep)")
    print()
    print(ours)
    print()
    print(published)
    print()
    print(difference)
    print()
    print(f"corpus rows WT103 and TBC: their first {args.corpus_samples} lines, against the rest of their own "
          "corpus and all of the other (ours; no published figure compared)")
    print("published figures (verified): " + "; ".join(sorted({source for _, source in PUBLISHED.values()})) +
          "; every other cell " + NOT_VERIFIED)
    if largest is not None:
        gap, row, column = largest
        print(f"largest difference: {gap:+.2f} ({row}, {column})")
    print("closing note: the metrics match NLTK and the notebook's code exactly (tests/test_metrics.py); the "
          "sentences differ: the notebook scored its in-memory sentences (BERT word pieces with [CLS] and [SEP], "
          "from a mix of kernel sessions), the release holds them detokenised. --with-cls-sep puts the markers "
          "back; restoring the word pieces needs BERT's vocabulary.")
    print(f"computed in {seconds:.1f} s")
    if args.json:
        finite = {row: {key: value if math.isfinite(value) else None for key, value in cells.items()}
                  for row, cells in table.items()}  # NaN: no n-gram of that order
        document = {"table": finite, "published": {f"{row} | {key}": {"figure": figure, "source": source}
                                                  for (row, key), (figure, source) in PUBLISHED.items()},
                    "with_cls_sep": args.with_cls_sep, "corpus_samples": args.corpus_samples,
                    "largest_difference": None if largest is None else
                    {"value": largest[0], "row": largest[1], "column": largest[2]}}
        args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return table


if __name__ == "__main__":
    main()
