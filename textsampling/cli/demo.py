"""A tour of the toy samplers of parts 1–2, each measured against the exact answer.

For every algorithm the tour runs the NumPy reference sampler on a target small enough to enumerate,
prints its estimate next to the exact value (total-variation distance, acceptance rate, effective sample
size) and saves a plot. Run it with ``textsampling demo --output DIR``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from textsampling import diagnostics, markov
from textsampling.reference import annealing, categorical, gibbs, importance, proposals, rejection
from textsampling.reference import metropolis_hastings as mh
from textsampling.targets import (
    BigramLM,
    Categorical,
    GaussianMixture,
    KeywordTarget,
    PairwiseChain,
    TopicSimilarity,
)

__all__ = ["add_arguments", "run", "tour"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="demo-output", help="folder for the plots (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every generator (default 0)")
    parser.add_argument(
        "--num-steps", type=int, default=20_000, help="MCMC steps per sampler (default 20000)"
    )


def _empirical_tv(target, samples) -> float:
    """TV distance between the histogram of ``samples`` and the exact law of ``target``."""
    return diagnostics.empirical_tv_distance(target.state_index(samples), target.probabilities())


def _iid_tv(target, num_samples: float, rng) -> float:
    """TV of ``num_samples`` exact independent draws: the noise floor a perfect sampler would show."""
    draws = target.sample_exact(rng, max(int(round(num_samples)), 1))
    return _empirical_tv(target, draws)


def _ess(values: np.ndarray) -> float:
    """ESS of one scalar chain (as a single-chain array of shape (1, N))."""
    return float(diagnostics.effective_sample_size(np.asarray(values, dtype=np.float64)[None, :]))


def tour(seed: int = 0, num_steps: int = 20_000, output: Path | None = None) -> list[dict]:
    """Run every toy sampler once; return one row of measured figures per algorithm.

    Each row holds ``algorithm``, ``target``, ``quantity``, ``estimate``, ``exact``, ``error`` and,
    where they apply, ``acceptance_rate`` and ``ess``. Plots go to ``output`` when given.
    """
    rows: list[dict] = []
    figures: dict[str, object] = {}
    rng = np.random.default_rng(seed)
    burn_in = num_steps // 10

    # --- the targets ------------------------------------------------------------------------
    categorical_target = Categorical(np.random.default_rng(seed).normal(size=8) * 1.5)
    bigram = BigramLM.random(np.random.default_rng(seed + 1), vocab_size=5, max_length=4, concentration=0.7)
    fixed = bigram.fixed_length(4)
    # part 1's composed target: fluency x topic relevance x "contains token 2"
    keyword_target = KeywordTarget(
        fixed, keywords=[2], log_similarity=TopicSimilarity(topic_tokens=[2, 3], weight=1.0)
    )
    ising = PairwiseChain.ising(length=5, coupling=0.6, field=0.2)
    mixture = GaussianMixture(weights=[0.3, 0.7], means=[[-2.0], [2.0]], scales=[[0.6], [1.0]])

    # 1. inverse-CDF categorical sampling
    draws = categorical.sample(rng, categorical_target.logits, num_steps)
    rows.append(dict(algorithm="inverse-CDF categorical", target="categorical K=8",
                     quantity="TV(samples, pi)", estimate=_empirical_tv(categorical_target, draws),
                     exact=0.0, n=num_steps, floor=_iid_tv(categorical_target, num_steps, rng)))

    # 2. importance sampling: E[number of topic tokens] under the keyword target, uniform proposal
    def topic_count(states):
        return np.isin(states, [2, 3]).sum(axis=1).astype(np.float64)

    uniform_sequences = proposals.IndependentUniformSequences(fixed.vocab_size, fixed.length)
    result = importance.sample(rng, keyword_target.log_prob, uniform_sequences, num_steps)
    rows.append(dict(algorithm="importance sampling", target="keyword bigram V=5 L=4",
                     quantity="E[topic tokens]",
                     estimate=importance.estimate(topic_count(result.states), result.log_weights),
                     exact=keyword_target.expectation(topic_count),
                     ess=result.effective_sample_size, n=num_steps))

    # 3. rejection sampling with the tightest envelope M
    log_envelope = rejection.tightest_log_envelope(keyword_target, uniform_sequences)
    accepted = rejection.sample(rng, keyword_target.log_prob, uniform_sequences, log_envelope, num_steps * 5)
    rows.append(dict(algorithm="rejection sampling", target="keyword bigram V=5 L=4",
                     quantity="TV(accepted, pi)", estimate=_empirical_tv(keyword_target, accepted.samples),
                     exact=0.0, acceptance_rate=accepted.acceptance_rate, n=len(accepted.samples),
                     floor=_iid_tv(keyword_target, len(accepted.samples), rng),
                     note=f"Z/M = {np.exp(keyword_target.log_normalizer() - log_envelope):.3f}"))

    # 4. Metropolis–Hastings, single-site proposal, on the fixed-length bigram
    single_site = proposals.SingleSiteProposal(fixed.vocab_size, fixed.length)
    x0 = np.zeros(fixed.length, dtype=np.int64)
    trace = mh.sample(rng, x0, fixed.log_prob, single_site, num_steps)
    kept = trace.states.x[burn_in:]
    ess = _ess(trace.states.log_prob[burn_in:])
    rows.append(dict(algorithm="Metropolis-Hastings", target="bigram, length 4",
                     quantity="TV(samples, pi)", estimate=_empirical_tv(fixed, kept), exact=0.0,
                     acceptance_rate=float(np.mean(trace.infos.accepted)), ess=ess, n=len(kept),
                     floor=_iid_tv(fixed, ess, rng)))
    figures["mh_states"] = (fixed, kept)

    # 5. Gibbs sampling, random and systematic scan, on the Ising chain
    for scan, steps in (("random", num_steps), ("systematic", num_steps // ising.length)):
        gibbs_trace = gibbs.sample(rng, np.zeros(ising.length, dtype=np.int64), ising.conditional_log_probs,
                                   steps, scan=scan)
        gibbs_kept = gibbs_trace.states.x[steps // 10:]
        ess = _ess(gibbs_kept.sum(axis=1).astype(np.float64))  # ESS of the magnetisation
        rows.append(dict(algorithm=f"Gibbs ({scan} scan)", target="Ising chain L=5",
                         quantity="TV(samples, pi)", estimate=_empirical_tv(ising, gibbs_kept), exact=0.0,
                         acceptance_rate=1.0, ess=ess, n=len(gibbs_kept), floor=_iid_tv(ising, ess, rng)))

    # 6. simulated annealing on the keyword target: does it find the exact argmax? (Moves that change
    # the length come with CGMH; here single-site moves on sentences of length 4.)
    temperatures = annealing.geometric_schedule(5.0, 0.05, num_steps)
    start = np.full(fixed.length, 2)
    annealed = annealing.sample(rng, start, keyword_target.log_prob, single_site, num_steps, temperatures=temperatures)
    best = annealing.best(annealed, annealing.init(start, keyword_target.log_prob))
    exact_max = float(np.max(keyword_target.log_prob_all()))
    rows.append(dict(algorithm="simulated annealing", target="keyword bigram, length 4",
                     quantity="max log rho", estimate=float(best.log_prob), exact=exact_max,
                     acceptance_rate=float(np.mean(annealed.infos.accepted)),
                     note="argmax found" if np.isclose(best.log_prob, exact_max) else "argmax missed"))
    figures["annealing"] = (annealed, temperatures, exact_max)

    # 7. random-walk MH on a 1-D Gaussian mixture
    walk = proposals.GaussianRandomWalkProposal(scale=2.5, dimension=1)
    continuous = mh.sample(rng, np.zeros(1), mixture.log_prob, walk, num_steps)
    positions = np.asarray(continuous.states.x, dtype=np.float64).reshape(num_steps, -1)[burn_in:, 0]
    rows.append(dict(algorithm="random-walk MH", target="Gaussian mixture 1-D", quantity="mean",
                     estimate=float(positions.mean()), exact=float(np.ravel(mixture.mean())[0]),
                     acceptance_rate=float(np.mean(continuous.infos.accepted)), ess=_ess(positions),
                     n=len(positions)))
    figures["mixture"] = (mixture, positions)

    # exact mixing curves (TV to pi after t steps, from a point mass) of the MH kernel on the bigram of
    # length 3 (125 states) and the Gibbs kernel on the Ising chain (32 states)
    short = bigram.fixed_length(3)
    mh_matrix = mh.transition_matrix(short, proposals.SingleSiteProposal(short.vocab_size, short.length))
    gibbs_matrix = gibbs.transition_matrix(ising, scan="random")
    figures["mixing"] = (
        markov.mixing_curve(mh_matrix, np.eye(short.num_states)[0], 150, short.probabilities()),
        markov.mixing_curve(gibbs_matrix, np.eye(ising.num_states)[0], 150, ising.probabilities()),
    )

    for row in rows:
        row["error"] = abs(row["estimate"] - row["exact"])
    if output is not None:
        _plot(figures, Path(output))
    return rows


def _plot(figures: dict, output: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output.mkdir(parents=True, exist_ok=True)
    written = []

    target, kept = figures["mh_states"]
    counts = np.bincount(target.state_index(kept), minlength=target.num_states) / len(kept)
    order = np.argsort(target.probabilities())[::-1][:30]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(np.arange(len(order)) - 0.2, target.probabilities()[order], width=0.4, label="exact pi")
    ax.bar(np.arange(len(order)) + 0.2, counts[order], width=0.4, label="MH samples")
    ax.set(xlabel="state (30 most probable)", ylabel="probability",
           title="Metropolis-Hastings on a bigram LM: histogram vs exact")
    ax.legend()
    written.append(output / "mh_histogram_vs_exact.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    mh_curve, gibbs_curve = figures["mixing"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(mh_curve, label="MH single-site, bigram length 3")
    ax.semilogy(gibbs_curve, label="Gibbs random scan, Ising L=5")
    ax.set(xlabel="steps", ylabel="TV to pi (exact)", title="Exact mixing curves")
    ax.legend()
    written.append(output / "mixing_curves.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    annealed, temperatures, exact_max = figures["annealing"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(annealed.states.log_prob, lw=0.5, label="log rho of the chain")
    ax.axhline(exact_max, color="k", ls="--", label="exact max")
    ax.set(xlabel="step", ylabel="log rho", title="Simulated annealing (geometric schedule)")
    twin = ax.twinx()
    twin.plot(temperatures, color="tab:red", lw=1)
    twin.set_ylabel("temperature", color="tab:red")
    ax.legend(loc="lower right")
    written.append(output / "annealing_trace.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    mixture, positions = figures["mixture"]
    grid = np.linspace(positions.min() - 1, positions.max() + 1, 400)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.hist(positions, bins=80, density=True, alpha=0.6, label="random-walk MH")
    left.plot(grid, np.exp(mixture.log_prob(grid[:, None]) - 0.0), "k", label="exact density")
    left.set(xlabel="x", title="Gaussian mixture: histogram vs exact")
    left.legend()
    right.plot(positions[:2000], lw=0.5)
    right.set(xlabel="step", ylabel="x", title="trace (first 2000 kept steps)")
    written.append(output / "mixture_random_walk.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return written


def format_table(rows: list[dict]) -> str:
    """The tour's table. ``iid TV`` is the TV that ``ESS`` (or ``n``) exact independent draws show:
    the noise floor against which a sampler's TV is read."""
    header = (f"{'algorithm':<25}{'target':<26}{'quantity':<17}{'estimate':>9}{'exact':>9}{'error':>8}"
              f"{'iid TV':>8}{'n':>7}{'accept':>7}{'ESS':>7}  note")
    lines = [header, "-" * len(header)]
    for row in rows:
        accept = f"{row['acceptance_rate']:.3f}" if "acceptance_rate" in row else "-"
        ess = f"{row['ess']:.0f}" if "ess" in row else "-"
        floor = f"{row['floor']:.4f}" if "floor" in row else "-"
        count = f"{row['n']}" if "n" in row else "-"
        lines.append(
            f"{row['algorithm']:<25}{row['target']:<26}{row['quantity']:<17}{row['estimate']:>9.4f}"
            f"{row['exact']:>9.4f}{row['error']:>8.4f}{floor:>8}{count:>7}{accept:>7}{ess:>7}  {row.get('note', '')}"
        )
    lines.append("iid TV: TV distance that ESS (or n) exact independent draws would show (noise floor).")
    return "\n".join(lines)


def run(args) -> int:
    if args.num_steps < 100:
        raise ValueError(f"--num-steps must be at least 100, got {args.num_steps}")
    started = time.perf_counter()
    output = Path(args.output)
    rows = tour(seed=args.seed, num_steps=args.num_steps, output=output)
    print(format_table(rows))
    print(f"\nplots written to {output.resolve()}/ ({time.perf_counter() - started:.1f} s)")
    return 0
