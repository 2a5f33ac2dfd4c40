"""Benchmark: seconds per text metric on 1,000 hypotheses x 1,000 references, beside NLTK as the peer.

Prints ONE table. Rows: each metric of ``textsampling.metrics`` (and ``evaluate``, all of them at once)
on synthetic, seeded, realistic text — a Zipfian vocabulary of 5,000 words (p(rank k) ~ 1/k^1.1),
lengths uniform in 10..40 tokens — the median of ``--repeats`` runs with its min-max. The issue's
mark: every metric under 5 s on this CPU, exact (the tests check each against NLTK / sacrebleu / the
notebook; nothing here is approximate).

The peer: NLTK's ``corpus_bleu`` as bert-gen's notebook calls it for the Wang & Cho self-BLEU, whose cost
grows as N^2 (every text re-counts all the others' n-grams). It runs at ``--nltk-size`` texts (a size
where it takes seconds, not hours), next to ours at the same size, and its time at 1,000 texts is
extrapolated by (1000 / size)^2 — printed as an extrapolation, not a measurement.

Perplexity (``--perplexity``) is a forward pass of the scoring LM, not n-gram counting: reported on
its own rows when asked for, under the built-in tiny-shakespeare model: once on the synthetic texts
(their words are unknown to the model, so each row is cut to the model's 63 tokens: a worst case), once
on 1,000 sentences it was made for (the 500 held-out Shakespeare sentences of ``tests/data``, twice).

Run::

    .venv/bin/python benchmarks/bench_metrics.py                 # ~1-2 min on a laptop
    .venv/bin/python benchmarks/bench_metrics.py --perplexity

With ``$OUT`` set, the results are also written to ``$OUT/bench_metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_description  # noqa: E402
from textsampling import metrics  # noqa: E402

SEED = 2019
VOCABULARY_SIZE = 5000
ZIPF_EXPONENT = 1.1
MIN_LENGTH, MAX_LENGTH = 10, 40
TARGET_SECONDS = 5.0




def synthetic_corpus(rng: np.random.Generator, count: int) -> list:
    """``count`` sentences of a Zipfian 5,000-word vocabulary, lengths uniform in 10..40."""
    ranks = np.arange(1, VOCABULARY_SIZE + 1)
    probabilities = ranks ** -ZIPF_EXPONENT
    probabilities /= probabilities.sum()
    words = np.array([f"w{rank}" for rank in ranks])
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=count)
    return [" ".join(words[rng.choice(VOCABULARY_SIZE, size=length, p=probabilities)]) for length in lengths]


def measure(function, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats,
            "value": value if isinstance(value, float) else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-hypotheses", type=int, default=1000)
    parser.add_argument("--num-references", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="runs per metric (median, min-max)")
    parser.add_argument("--nltk-size", type=int, default=250, help="texts of NLTK's Wang & Cho self-BLEU (0: skip)")
    parser.add_argument("--nltk-repeats", type=int, default=3)
    parser.add_argument("--perplexity", action="store_true", help="also time perplexity under tiny-shakespeare")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(SEED)
    hypotheses = synthetic_corpus(rng, args.num_hypotheses)
    references = synthetic_corpus(rng, args.num_references)
    machine = machine_description()
    size = f"{args.num_hypotheses} x {args.num_references}"
    cases = [
        ("tokenize (whitespace), both corpora", lambda: float(len(metrics.tokenize_texts(hypotheses + references)))),
        ("BLEU vs reference corpus, nltk", lambda: metrics.reference_corpus_bleu(hypotheses, references)),
        ("BLEU vs reference corpus, sacrebleu",
         lambda: metrics.reference_corpus_bleu(hypotheses, references, convention="sacrebleu")),
        ("self-BLEU, wang-cho", lambda: metrics.self_bleu(hypotheses, "wang-cho")),
        ("self-BLEU, texygen", lambda: metrics.self_bleu(hypotheses, "texygen")),
        ("self-BLEU, sacrebleu", lambda: metrics.self_bleu(hypotheses, "sacrebleu")),
        ("% unique n-grams within, n=1..4", lambda: sum(metrics.unique_ngrams(hypotheses, n) for n in range(1, 5))),
        ("% unique n-grams vs references, n=1..4",
         lambda: sum(metrics.unique_ngrams(hypotheses, n, references) for n in range(1, 5))),
        ("distinct-1 and distinct-2", lambda: metrics.distinct_n(hypotheses, 1) + metrics.distinct_n(hypotheses, 2)),
        ("mean length", lambda: metrics.mean_length(hypotheses)),
        ("evaluate(): all of the above", lambda: float(len(metrics.evaluate(
            hypotheses, {"references": references}, self_bleu_conventions=("wang-cho", "texygen", "sacrebleu"))))),
    ]
    if args.perplexity:
        from textsampling.lm.loading import load_causal_lm

        model = load_causal_lm("tiny-shakespeare")

        the = int(model.encode(["the"])[0, 0])

        def perplexity():
            # The synthetic words are [UNK] to this model: they become "the", so that the timed forward pass
            # scores every row (the value means nothing; the time is the encode + forward of 1,000 texts).
            ids = model.encode(hypotheses)[:, : model.max_length]
            ids[np.isin(ids, sorted(model.special_token_ids))] = the
            return metrics.perplexity(model, ids, batch_size=256)

        cases.append(("perplexity, tiny-shakespeare, synthetic (63 tokens each)", perplexity))

        # Sentences the model was made for: the 500 held-out sentences of tests/data, twice (1,000 rows,
        # 5 to 60 tokens, 16 on average), encoded once; the time is the forward pass.
        held_out = Path(__file__).resolve().parents[1] / "tests" / "data" / "held_out_sentences.txt"
        lines = [line for line in held_out.read_text().splitlines() if line.strip() and not line.startswith("#")]
        held_out_ids = model.encode((lines * 2)[:1000])
        held_out_ids = held_out_ids[metrics.scorable_rows(model, held_out_ids)]

        cases.append(("perplexity, tiny-shakespeare, held-out sentences",
                      lambda: metrics.perplexity(model, held_out_ids, batch_size=256)))
    rows = []
    for label, function in cases:
        rows.append({"metric": label, "implementation": "textsampling", "size": size,
                     **measure(function, args.repeats)})

    peer = None
    if args.nltk_size:
        from nltk.translate import bleu_score

        small = [text.split() for text in hypotheses[: args.nltk_size]]

        def nltk_self_bleu():
            others = [[s for j, s in enumerate(small) if j != i] for i in range(len(small))]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return 100 * bleu_score.corpus_bleu(others, small)

        nltk_row = measure(nltk_self_bleu, args.nltk_repeats)
        ours_row = measure(lambda: metrics.self_bleu(small, "wang-cho"), args.repeats)
        factor = (args.num_hypotheses / args.nltk_size) ** 2
        peer = {"size": args.nltk_size, "nltk": nltk_row, "ours": ours_row,
                "same_value": nltk_row["value"] == ours_row["value"] or
                abs(nltk_row["value"] - ours_row["value"]) <= 1e-12 * abs(nltk_row["value"]),
                "nltk_extrapolated_s": nltk_row["median_s"] * factor, "extrapolated_to": args.num_hypotheses}
        rows.append({"metric": "self-BLEU, wang-cho", "implementation": "nltk corpus_bleu (peer)",
                     "size": f"{args.nltk_size} texts", **nltk_row})
        rows.append({"metric": "self-BLEU, wang-cho", "implementation": "textsampling",
                     "size": f"{args.nltk_size} texts", **ours_row})

    load = machine["load_average_1_5_15"]
    print(f"# seconds per metric: median of the repeats (min-max); synthetic Zipfian text (V={VOCABULARY_SIZE}, "
          f"s={ZIPF_EXPONENT}), lengths {MIN_LENGTH}-{MAX_LENGTH}, seed {SEED}")
    print(f"# machine: CPU {machine['cpu']} ({machine['cpu_count']} cores; 1 thread: pure Python); load average "
          f"{load}; python {machine['python']}")
    header = f"{'metric':44s} {'implementation':26s} {'size':>12s} {'median s':>9s} {'min-max s':>15s} {'runs':>4s}"
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = f"{row['min_s']:.3f}-{row['max_s']:.3f}"
        print(f"{row['metric']:44s} {row['implementation']:26s} {row['size']:>12s} {row['median_s']:9.3f} "
              f"{spread:>15s} {row['repeats']:4d}")
    slowest = max((r for r in rows if r["implementation"] == "textsampling" and r["size"] == size),
                  key=lambda r: r["median_s"])
    print(f"# slowest at {size}: {slowest['metric']} {slowest['median_s']:.2f} s (mark: < {TARGET_SECONDS:.0f} s per "
          "metric)")
    if peer:
        print(f"# peer: NLTK's wang-cho self-BLEU at {peer['size']} texts {peer['nltk']['median_s']:.2f} s vs ours "
              f"{peer['ours']['median_s']:.3f} s (same value: {peer['same_value']}); NLTK at "
              f"{peer['extrapolated_to']} texts extrapolated by (N/{peer['size']})^2: "
              f"~{peer['nltk_extrapolated_s']:.0f} s (not measured)")
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "bench_metrics.json"
        path.write_text(json.dumps({"machine": machine, "config": vars(args), "results": rows, "peer": peer},
                                   indent=2))
        print(f"# written {path}")
    return rows


if __name__ == "__main__":
    main()
