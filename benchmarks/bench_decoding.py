"""Benchmark: left-to-right decoding, ours (with and without the KV cache) against ``transformers``' ``generate``.

Prints ONE table and, with ``$OUT`` set, writes ``$OUT/bench_decoding.json``. The model is the built-in
``tiny-shakespeare`` causal LM (GPT-2 architecture, 4 layers, vocabulary 8,000, 63 content tokens at
most), on the CPU unless ``--device`` says otherwise. Rows, at each batch size (``--batch-sizes``, default
1 and 64):

* ``greedy / ours cached`` — :func:`textsampling.torch.decoding.decode` with ``greedy=True``: one model call
  per position on the new token only (:meth:`~textsampling.lm.hf_causal.HFCausalLM.next_token_log_probs_cached_torch`);
* ``greedy / ours uncached`` — the same with ``use_cache=False`` (the whole prefix at every position);
* ``greedy / generate`` — ``model.generate(do_sample=False)`` from BOS, the special tokens other than END
  suppressed (as our decoders never produce them), stopping at END. Greedy does identical work on both
  sides: the script checks that the sentences are identical before timing;
* ``ancestral / ...`` — sampling at temperature 1 (ours: per-chain counter uniforms, as ``textsampling
  generate`` draws them; ``generate``: ``do_sample=True, top_k=0``). The two draw different sentences, so
  their lengths, and the number of positions decoded, differ.

Each cell is the median of ``--repeats`` (default 5) calls, the implementations interleaved within each
repeat (so a change of machine load hits all of them alike), with min and max; threads and load average are
printed. ``steps`` is the number of positions decoded, one model call each: ``generate``'s generated length,
ours the longest sentence plus its END (both stop when every row has ended). The ratio columns compare time
per step, ``generate``'s over ours (> 1: ours is faster): ``ratio`` in wall-clock time, ``cpu`` in this
process's CPU time (``time.process_time``), which a loaded machine disturbs less. For greedy both sides decode
the same sentences in the same number of steps, so the per-step ratio is the per-call ratio; for sampling,
where a batch stops at its longest sentence, the per-call ratio would mostly compare the lengths that the two
happened to draw (the JSON gives it too: ``generate_time_over_ours``). Run::

    .venv/bin/python benchmarks/bench_decoding.py --threads 1
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.machine import cpu_name  # noqa: E402
from textsampling.lm.loading import load_causal_lm  # noqa: E402
from textsampling.lm.tokens import PAD  # noqa: E402
from textsampling.torch import decoding  # noqa: E402
from textsampling.torch.randomness import counter_uniforms  # noqa: E402

SEED = 2021


def generate_kwargs(lm, greedy: bool, max_new_tokens: int) -> dict:
    """``generate``'s settings for the same law as our decoder: specials other than END suppressed, END stops."""
    suppressed = sorted(set(lm.special_token_ids) - {lm.end_token_id})
    common = {"max_new_tokens": max_new_tokens, "eos_token_id": lm.end_token_id, "pad_token_id": lm.end_token_id,
              "suppress_tokens": suppressed}
    if greedy:
        return {**common, "do_sample": False, "num_beams": 1}
    return {**common, "do_sample": True, "top_k": 0, "top_p": 1.0, "temperature": 1.0}


def content_rows(sequences, end: int) -> tuple:
    """``generate``'s output without BOS, cut at the first END: lists of content ids, and the steps it ran."""
    rows = []
    for row in sequences[:, 1:].tolist():
        rows.append(row[: row.index(end)] if end in row else row)
    return rows, sequences.shape[1] - 1  # one forward pass per generated position


def our_rows(result) -> tuple:
    """Our sentences as lists of content ids, and the steps ``decode`` ran (the longest sentence, END included)."""
    rows = [[int(t) for t in row if t != PAD] for row in result.tokens.tolist()]
    steps = max((len(row) + bool(ended) for row, ended in zip(rows, result.ended.tolist())), default=0)
    return rows, steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="1,64", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median, min, max)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the model's maximum (63)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lm = load_causal_lm("tiny-shakespeare", device=device)
    max_new_tokens = args.max_new_tokens or lm.max_length
    bos = lm.bos_token_id
    load = os.getloadavg()
    print(f"# decoding: built-in tiny-shakespeare causal LM, max {max_new_tokens} new tokens, device {device}")
    print(f"# machine: {cpu_name()} ({os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"torch {torch.__version__}")
    print(f"# each cell: median of {args.repeats} interleaved calls [min-max]; ratio = generate's time per step "
          "(one model call) / ours, in wall-clock time and (cpu) in this process's CPU time")
    results = []
    for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
        uniforms = counter_uniforms(SEED, torch.arange(batch, device=device), 0, max_new_tokens,
                                    dtype=torch.float64, device=device)  # (B, max_new_tokens)
        start = torch.full((batch, 1), bos, dtype=torch.long, device=device)
        for law in ("greedy", "ancestral"):
            greedy = law == "greedy"
            kwargs = generate_kwargs(lm, greedy, max_new_tokens)
            calls = {
                "ours cached": lambda: our_rows(decoding.decode(uniforms, lm, greedy=greedy, use_cache=True)),
                "ours uncached": lambda: our_rows(decoding.decode(uniforms, lm, greedy=greedy, use_cache=False)),
                "generate": lambda: content_rows(lm.model.generate(start, **kwargs), lm.end_token_id),
            }
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                outputs = {name: call()[0] for name, call in calls.items()}  # warm-up, and the outputs compared
                if greedy and not (outputs["ours cached"] == outputs["ours uncached"] == outputs["generate"]):
                    raise SystemExit("greedy: ours (cached / uncached) and generate differ; timing would mislead")
                times, cpu_times = {name: [] for name in calls}, {name: [] for name in calls}
                tokens, steps = {name: [] for name in calls}, {name: [] for name in calls}
                for _ in range(args.repeats):
                    for name, call in calls.items():
                        began, began_cpu = time.perf_counter(), time.process_time()
                        rows, num_steps = call()
                        times[name].append(time.perf_counter() - began)
                        cpu_times[name].append(time.process_time() - began_cpu)
                        tokens[name].append(sum(len(r) for r in rows))
                        steps[name].append(max(num_steps, 1))
            per_step = {name: [t / n for t, n in zip(times[name], steps[name])] for name in calls}
            cpu_per_step = {name: [t / n for t, n in zip(cpu_times[name], steps[name])] for name in calls}
            reference = statistics.median(times["generate"])
            reference_step = statistics.median(per_step["generate"])
            reference_cpu_step = statistics.median(cpu_per_step["generate"])
            for name in calls:
                median = statistics.median(times[name])
                row = {
                    "law": law, "implementation": name, "batch": batch, "seconds_median": median,
                    "seconds_min": min(times[name]), "seconds_max": max(times[name]),
                    "steps_median": statistics.median(steps[name]),
                    "seconds_per_step_median": statistics.median(per_step[name]),
                    "seconds_per_step_min": min(per_step[name]), "seconds_per_step_max": max(per_step[name]),
                    "cpu_seconds_per_step_median": statistics.median(cpu_per_step[name]),
                    "tokens_per_second": sum(tokens[name]) / sum(times[name]),
                    "generate_time_over_ours": reference / median,
                    "generate_step_time_over_ours": reference_step / statistics.median(per_step[name]),
                    "generate_cpu_step_time_over_ours": reference_cpu_step / statistics.median(cpu_per_step[name]),
                }
                results.append(row)
    load_after = os.getloadavg()
    print(f"# load average at the end {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{'law':10s} {'implementation':15s} {'batch':>5s} {'seconds [min-max]':>26s} {'steps':>5s} "
          f"{'ms/step [min-max]':>22s} {'tokens/s':>9s} {'ratio':>6s} {'cpu':>5s}")
    for row in results:
        span = f"{row['seconds_median']:.4f} [{row['seconds_min']:.3f}-{row['seconds_max']:.3f}]"
        step_span = (f"{1e3 * row['seconds_per_step_median']:.2f} [{1e3 * row['seconds_per_step_min']:.2f}-"
                     f"{1e3 * row['seconds_per_step_max']:.2f}]")
        peer = row["implementation"] == "generate"
        ratio = "-" if peer else f"{row['generate_step_time_over_ours']:.2f}"
        cpu = "-" if peer else f"{row['generate_cpu_step_time_over_ours']:.2f}"
        print(f"{row['law']:10s} {row['implementation']:15s} {row['batch']:5d} {span:>26s} "
              f"{row['steps_median']:5.0f} {step_span:>22s} {row['tokens_per_second']:9.0f} {ratio:>6s} {cpu:>5s}")
    report = {"load_average": load, "load_average_end": load_after, "threads": torch.get_num_threads(),
              "results": results}
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_decoding.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
