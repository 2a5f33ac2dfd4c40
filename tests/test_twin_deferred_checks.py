"""The twins' ``sample`` settles its value checks every CHECK_EVERY steps with one synchronisation, and still
raises the step's error on a bad value (MH: a +inf log-density; Gibbs: a NaN conditional row)."""

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.reference import proposals
from textsampling.torch import chain, gibbs, metropolis_hastings
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

CATEGORICAL = twin_of(targets.Categorical(np.linspace(-1.0, 1.0, 10)), torch.float64)
PROPOSAL = twin_of(proposals.UniformCategoricalProposal(10), torch.float64)
BIGRAM = twin_of(targets.FixedLengthBigram(np.zeros(3), np.zeros((3, 4)), 4), torch.float64)


def _counting(monkeypatch, module):
    calls = []
    original = module.raise_if

    def counted(conditions, messages):
        calls.append(len(conditions))
        return original(conditions, messages)

    monkeypatch.setattr(module, "raise_if", counted)
    return calls


@pytest.mark.parametrize("num_steps", [1, 63, 64, 130])
def test_mh_sample_synchronises_once_per_check_every_steps(monkeypatch, num_steps):
    in_chain, in_mh = _counting(monkeypatch, chain), _counting(monkeypatch, metropolis_hastings)
    rng = CounterGenerator(3, torch.arange(5))
    metropolis_hastings.sample(rng, torch.zeros(5, dtype=torch.int64), CATEGORICAL.log_prob, PROPOSAL, num_steps)
    assert len(in_mh) == 1  # init's check of the start, then no per-step check
    assert len(in_chain) == -(-num_steps // chain.CHECK_EVERY)  # every CHECK_EVERY steps, and what is left at the end


def test_gibbs_sample_synchronises_once_per_check_every_steps(monkeypatch):
    in_chain, in_gibbs = _counting(monkeypatch, chain), _counting(monkeypatch, gibbs)
    rng = CounterGenerator(3, torch.arange(5))
    x0 = torch.zeros((5, 4), dtype=torch.int64)
    gibbs.sample(rng, x0, BIGRAM.conditional_log_probs, 130, dtype=torch.float64)
    assert len(in_gibbs) == 0 and len(in_chain) == 3


@pytest.mark.parametrize("num_steps", [3, 100])
def test_mh_sample_still_refuses_a_positive_infinite_log_density(num_steps):
    def log_prob(x):  # +inf at state 7, which the uniform proposal reaches from the start 0 (seed 3: step 0)
        return torch.where(x == 7, torch.inf, CATEGORICAL.log_prob(x))

    rng = CounterGenerator(3, torch.arange(4))
    with pytest.raises(ValueError, match=r"\+inf at a proposed state"):
        metropolis_hastings.sample(rng, torch.zeros(4, dtype=torch.int64), log_prob, PROPOSAL, num_steps)


def test_gibbs_sample_still_refuses_a_nan_conditional():
    def conditional(x, positions):
        rows = BIGRAM.conditional_log_probs(x, positions)
        return torch.where(positions[:, None] == 2, torch.nan, rows)

    rng = CounterGenerator(3, torch.arange(4))
    with pytest.raises(ValueError, match="never NaN"):
        gibbs.sample(rng, torch.zeros((4, 4), dtype=torch.int64), conditional, 10, dtype=torch.float64)


def test_deferred_checks_settle_in_one_synchronisation():
    checks = chain.DeferredValueChecks("bad value", every=2)
    checks.add(torch.tensor(False))
    checks.after_step(0)  # not yet: after step 1
    checks.add(torch.tensor(True))
    with pytest.raises(ValueError, match="bad value"):
        checks.after_step(1)
    checks.check()  # settled: nothing left to raise
    with pytest.raises(ValueError, match="every"):
        chain.DeferredValueChecks("x", every=0)
