"""Benchmark: one CGMH step, candidates rescored in full against the shared prefix run once (KV cache).

Prints ONE table and, with ``$OUT`` set, writes ``$OUT/bench_cgmh.json``. The model is the built-in
``tiny-shakespeare`` causal LM (GPT-2 architecture, 4 layers, hidden 128, vocabulary 8,000), on the CPU
unless ``--device`` says otherwise; the step is :func:`textsampling.torch.cgmh.step` with ``K =
--num-candidates`` (default 20) candidates, sentences of at most ``--max-length`` (default 16) tokens, no
keywords, for ``--batch-sizes`` chains (default 1 and 8), started from Shakespeare lines cut to the
maximum length. Rows, at each batch size:

* ``full rescoring`` — every one of the ``B (K + 1)`` sentences of a step (the ``K`` candidates and the
  deletion) run through the whole model, as any causal LM is scored
  (:class:`textsampling.lm.base.PrefixScorer`, the default of a model without ``prefix_scorer_torch``);
* ``prefix reuse`` — :meth:`textsampling.lm.hf_causal.HFCausalLM.prefix_scorer_torch`: the current
  sentences run once (the model keeps that pass: a step after a rejection of every chain runs none), the
  sentences continued from the keys and values of each prefix :math:`x_{<i}`; a sentence equal to the
  current one (the deletion slot of a step that is not a delete, every slot of an impossible move) is
  not run again. Each timed run starts from the states of the warm-up, with another sentence kept, so
  its first step runs the pass.

and, with ``--head`` (on by default; ``--no-head`` skips it), the causal head alone on the hidden states
of the ``B (K + 1)`` sentences of full rescoring (every real position):

* ``head / plain`` — ``linear``, a copying ``masked_fill`` of the never-sampled ids, ``gather`` and
  ``torch.logsumexp`` (the package's head before issue 15);
* ``head / ours`` — the package's head (``HFCausalLM``'s, called as the scoring methods call it): the
  mask as the matmul's bias, the same ``logsumexp`` operations in place. The script checks that the two
  give identical scores (``torch.equal``) and prints it.

Both CGMH rows run the same ``--num-steps`` steps (default 10) from the same states with the same per-chain counter
uniforms; the script checks that they take the same decisions (moves, positions, proposals, acceptances)
before timing. Each cell is the median of ``--repeats`` (default 5) runs, the two implementations
interleaved within each repeat (so a change of machine load hits both alike), with min and max, in
milliseconds per step, twice: wall-clock time, and the process's CPU time (``time.process_time``; with
``--threads 1`` the work done, less disturbed by other processes on a shared machine); threads and load
average are printed. Each ratio is full rescoring's time over prefix reuse's (> 1: prefix reuse is
faster). ``calls`` is the number of model calls per step (in the warm-up run). Run::

    .venv/bin/python benchmarks/bench_cgmh.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.machine import cpu_name  # noqa: E402
from textsampling.lm.base import FullRescoring  # noqa: E402
from textsampling.lm.loading import load_causal_lm  # noqa: E402
from textsampling.reference.cgmh import make_config  # noqa: E402
from textsampling.torch import cgmh  # noqa: E402
from textsampling.torch.randomness import CounterGenerator  # noqa: E402

SEED = 2021
LINES = [
    "now is the winter of our discontent made glorious summer by this sun of york",
    "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer",
    "friends, romans, countrymen, lend me your ears; i come to bury caesar, not to praise him",
    "but soft, what light through yonder window breaks? it is the east, and juliet is the sun",
    "all the world's a stage, and all the men and women merely players",
    "the quality of mercy is not strain'd, it droppeth as the gentle rain from heaven",
    "if music be the food of love, play on; give me excess of it",
    "o, what a rogue and peasant slave am i! is it not monstrous that this player here",
]


def start_sentences(lm, batch: int, max_length: int, device) -> torch.Tensor:
    """``(batch, <= max_length)`` ids: the lines (cycled), each cut to ``max_length`` tokens."""
    encoded = lm.encode([LINES[b % len(LINES)] for b in range(batch)])[:, :max_length]
    return torch.as_tensor(encoded, device=device)


def run_steps(state, config, generator, num_steps: int):
    """``num_steps`` steps from ``state``; returns the infos (what the two implementations must agree on)."""
    infos = []
    for t in range(num_steps):
        state, info = cgmh.step(generator.uniforms(t, cgmh.num_uniforms(), dtype=torch.float64), state, config)
        infos.append(info)
    return infos


def same_decisions(first, second) -> bool:
    return all(
        torch.equal(a.move, b.move) and torch.equal(a.position, b.position) and torch.equal(a.proposal, b.proposal)
        and torch.equal(a.accepted, b.accepted)
        for a, b in zip(first, second)
    )


def plain_head(lm, states, targets, rows_per_chunk: int):
    """``log p(target | state)`` as the head did before issue 15: a copy to mask, ``torch.logsumexp``."""
    head, allowed = lm.model.get_output_embeddings(), lm._allowed
    out = []
    for start in range(0, states.shape[0], rows_per_chunk):
        logits = head(states[start : start + rows_per_chunk]).float()
        logits = logits.masked_fill(~allowed, float("-inf"))
        target = targets[start : start + rows_per_chunk]
        out.append(logits.gather(1, target[:, None])[:, 0] - torch.logsumexp(logits, dim=-1))
    return torch.cat(out)


def time_head(lm, x0, num_candidates: int, repeats: int) -> list:
    """The head alone on the states of ``B (K + 1)`` sentences like a step's: plain against ours, interleaved."""
    from textsampling.lm.hf_causal import CHUNK_ELEMENTS, CPU_CHUNK_ELEMENTS

    sentences = x0.repeat_interleave(num_candidates + 1, dim=0)  # (B (K + 1), L)
    inputs, attention, lengths = lm._inputs(sentences)
    targets = torch.cat([inputs[:, 1:], inputs.new_zeros(inputs.shape[0], 1)], dim=1)
    targets[torch.arange(inputs.shape[0]), lengths] = lm.end_token_id
    with torch.no_grad():
        states = lm._hidden(inputs, attention)[attention]  # (M, H): every real position
        targets = targets[attention]
        elements = CPU_CHUNK_ELEMENTS if states.device.type == "cpu" else CHUNK_ELEMENTS
        calls = {
            "plain": lambda: plain_head(lm, states, targets, max(1, elements // lm.vocab_size)),
            "ours": lambda: lm._log_probs_of(states, targets),
        }
        outputs = {name: call() for name, call in calls.items()}
        times = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                began = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - began)
    identical = bool(torch.equal(outputs["plain"], outputs["ours"]))
    reference = statistics.median(times["plain"])
    return [{"implementation": f"head / {name}", "rows": int(states.shape[0]), "identical": identical,
             "seconds_median": statistics.median(times[name]), "seconds_min": min(times[name]),
             "seconds_max": max(times[name]), "plain_time_over_this": reference / statistics.median(times[name])}
            for name in calls]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated numbers of chains")
    parser.add_argument("--num-candidates", type=int, default=20, help="K, candidates per step")
    parser.add_argument("--max-length", type=int, default=16, help="longest sentence, in tokens")
    parser.add_argument("--num-steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (median, min, max)")
    parser.add_argument("--no-head", dest="head", action="store_false", help="skip the head-alone rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lm = load_causal_lm("tiny-shakespeare", device=device)
    models = {"full rescoring": FullRescoring(lm), "prefix reuse": lm}
    configs = {
        name: make_config(model, (), num_candidates=args.num_candidates, max_length=args.max_length)
        for name, model in models.items()
    }
    load = os.getloadavg()
    print(f"# one CGMH step: built-in tiny-shakespeare causal LM, K = {args.num_candidates} candidates, "
          f"max length {args.max_length}, {args.num_steps} steps per run, device {device}")
    print(f"# machine: {cpu_name()} ({os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"torch {torch.__version__}")
    print(f"# each cell: median of {args.repeats} interleaved runs [min-max], ms per step; "
          "wall clock, then process CPU time; ratio = full rescoring's time / prefix reuse's; calls = model calls "
          "per step")
    results = []
    for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
        x0 = start_sentences(lm, batch, args.max_length, device)
        states = {name: cgmh.init(x0, config) for name, config in configs.items()}
        chains = torch.arange(batch, device=device)
        with torch.no_grad():
            infos, calls = {}, {}
            for name in models:  # warm-up, the decisions compared, the model calls counted
                counter = []
                hook = lm.model.register_forward_pre_hook(lambda *_: counter.append(1))
                if lm._head_only:  # the scorers call the transformer without its head
                    hook.remove()
                    hook = lm.model.base_model.register_forward_pre_hook(lambda *_: counter.append(1))
                try:
                    infos[name] = run_steps(states[name], configs[name], CounterGenerator(SEED, chains), args.num_steps)
                finally:
                    hook.remove()
                calls[name] = len(counter) / args.num_steps
            if not same_decisions(infos["full rescoring"], infos["prefix reuse"]):
                raise SystemExit(f"batch {batch}: full rescoring and prefix reuse decide differently; "
                                 "timing would mislead")
            accepted = float(torch.stack([i.accepted for i in infos["prefix reuse"]]).double().mean())
            times = {name: [] for name in models}
            cpu_times = {name: [] for name in models}
            for _ in range(args.repeats):
                for name in models:
                    generator = CounterGenerator(SEED, chains)
                    began, cpu_began = time.perf_counter(), time.process_time()
                    run_steps(states[name], configs[name], generator, args.num_steps)
                    cpu_times[name].append((time.process_time() - cpu_began) / args.num_steps)
                    times[name].append((time.perf_counter() - began) / args.num_steps)
        reference = statistics.median(times["full rescoring"])
        cpu_reference = statistics.median(cpu_times["full rescoring"])
        for name in models:
            median, cpu_median = statistics.median(times[name]), statistics.median(cpu_times[name])
            results.append({
                "implementation": name, "batch": batch, "seconds_per_step_median": median,
                "seconds_per_step_min": min(times[name]), "seconds_per_step_max": max(times[name]),
                "full_time_over_this": reference / median, "cpu_seconds_per_step_median": cpu_median,
                "cpu_seconds_per_step_min": min(cpu_times[name]), "cpu_seconds_per_step_max": max(cpu_times[name]),
                "full_cpu_time_over_this": cpu_reference / cpu_median, "model_calls_per_step": calls[name],
                "acceptance_rate": accepted,
            })
    print(f"{'implementation':15s} {'batch':>5s} {'ms per step [min-max]':>26s} {'ratio':>6s} "
          f"{'CPU ms per step [min-max]':>26s} {'ratio':>6s} {'calls':>5s}")
    for row in results:
        cells = []
        for prefix in ("", "cpu_"):
            cells.append(f"{1e3 * row[prefix + 'seconds_per_step_median']:.1f} "
                         f"[{1e3 * row[prefix + 'seconds_per_step_min']:.1f}-"
                         f"{1e3 * row[prefix + 'seconds_per_step_max']:.1f}]")
            cells.append("-" if row["implementation"] == "full rescoring"
                         else f"{row['full_' + prefix + 'time_over_this']:.2f}")
        print(f"{row['implementation']:15s} {row['batch']:5d} {cells[0]:>26s} {cells[1]:>6s} {cells[2]:>26s} "
              f"{cells[3]:>6s} {row['model_calls_per_step']:5.2f}")
    heads = []
    if args.head:
        for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
            for row in time_head(lm, start_sentences(lm, batch, args.max_length, device), args.num_candidates,
                                 args.repeats):
                heads.append(dict(row, batch=batch))
        print(f"{'head alone':15s} {'batch':>5s} {'rows':>5s} {'ms per call [min-max]':>26s} {'ratio':>6s} identical")
        for row in heads:
            span = f"{1e3 * row['seconds_median']:.2f} [{1e3 * row['seconds_min']:.2f}-{1e3 * row['seconds_max']:.2f}]"
            ratio = "-" if row["implementation"] == "head / plain" else f"{row['plain_time_over_this']:.2f}"
            print(f"{row['implementation']:15s} {row['batch']:5d} {row['rows']:5d} {span:>26s} {ratio:>6s} "
                  f"{'yes' if row['identical'] else 'NO'}")
    report = {
        "load_average": load, "threads": torch.get_num_threads(), "cpu": cpu_name(), "device": str(device),
        "num_candidates": args.num_candidates, "max_length": args.max_length, "num_steps": args.num_steps,
        "repeats": args.repeats, "results": results, "head": heads,
    }
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_cgmh.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
