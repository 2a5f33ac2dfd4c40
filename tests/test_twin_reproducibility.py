"""Per-chain reproducibility: chain ``c`` depends only on (seed, c, step), not on the batch around it.

Chains 0-9 run alone reproduce chains 0-9 of a batch of 10,000, bit for bit, for every batched
sampler (float32 and float64); any subset of chain indices reproduces the same rows; and the same seed
gives the same chain in the NumPy reference, on the torch CPU, and on CUDA when present. A
``torch.Generator`` (the fast path) lacks the property: the same test on it sees different chains.
Deterministic: no statistics.
"""

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import gibbs as reference_gibbs
from textsampling.reference import metropolis_hastings as reference_mh
from textsampling.reference import proposals
from textsampling.torch import annealing, gibbs, importance, metropolis_hastings
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

SEED = 8084
BIG = 10_000
CATEGORICAL = targets.Categorical(np.random.default_rng(0).normal(size=1000) * 2)
BIGRAM = targets.FixedLengthBigram(
    np.random.default_rng(1).normal(size=5), np.random.default_rng(2).normal(size=(5, 6)), 4
)


def _run(kind, chain_index, dtype, device="cpu"):
    rng = CounterGenerator(SEED, torch.as_tensor(chain_index, device=device))
    num_chains = rng.num_chains
    if kind == "mh":
        x0 = (rng.chain_index * 37) % 1000
        trace = metropolis_hastings.sample(
            rng,
            x0,
            twin_of(CATEGORICAL, dtype, device).log_prob,
            twin_of(proposals.UniformCategoricalProposal(1000), dtype, device),
            30,
        )
        return trace.states.x, trace.infos.accepted
    if kind in ("gibbs-random", "gibbs-systematic"):
        x0 = torch.zeros((num_chains, 4), dtype=torch.int64, device=device)
        trace = gibbs.sample(
            rng, x0, twin_of(BIGRAM, dtype, device).conditional_log_probs, 6, scan=kind[6:], dtype=dtype
        )
        return trace.states.x, trace.infos.position
    if kind == "annealing":
        x0 = torch.zeros((num_chains, 4), dtype=torch.int64, device=device)
        log_prob_fn = twin_of(BIGRAM, dtype, device).log_prob
        trace = annealing.sample(
            rng,
            x0,
            log_prob_fn,
            twin_of(proposals.SingleSiteProposal(5, 4), dtype, device),
            8,
            temperatures=annealing.geometric_schedule(2.0, 0.1, 8, dtype=dtype, device=device),
        )
        return trace.states.x, annealing.best(trace, annealing.init(x0, log_prob_fn, dtype=dtype)).x
    if kind == "importance":
        result = importance.sample(
            rng,
            twin_of(BIGRAM, dtype, device).log_prob,
            twin_of(proposals.IndependentUniformSequences(5, 4), dtype, device),
            10,
        )
        return result.states, result.log_weights
    raise KeyError(kind)


KINDS = ["mh", "gibbs-random", "gibbs-systematic", "annealing", "importance"]
# Every sampler in float64; the two with the most float32 arithmetic also in float32 (kept short: 2 cores).
KIND_DTYPES = [(kind, torch.float64) for kind in KINDS] + [("mh", torch.float32), ("gibbs-random", torch.float32)]


@pytest.mark.parametrize("kind, dtype", KIND_DTYPES, ids=[f"{k}-{str(d)[6:]}" for k, d in KIND_DTYPES])
def test_chains_0_to_9_alone_reproduce_chains_0_to_9_of_ten_thousand(kind, dtype):
    alone = _run(kind, torch.arange(10), dtype)
    batch = _run(kind, torch.arange(BIG), dtype)
    assert batch[0].shape[0] == BIG
    for small, big in zip(alone, batch, strict=True):
        assert torch.equal(small, big[:10])
    # any subset, in any order
    subset = torch.tensor([BIG - 1, 5, 4321])
    for small, big in zip(_run(kind, subset, dtype), batch, strict=True):
        assert torch.equal(small, big[subset])


def test_same_seed_same_chain_in_numpy_and_torch_cpu():
    chains = [0, 7, 4321]
    states, accepted = _run("mh", torch.tensor(chains), torch.float64)
    proposal = proposals.UniformCategoricalProposal(1000)
    for row, chain in enumerate(chains):
        expected = reference_mh.sample(
            NumpyCounterGenerator(SEED, chain), (chain * 37) % 1000, CATEGORICAL.log_prob, proposal, 30
        )
        np.testing.assert_array_equal(states[row].numpy(), expected.states.x)
        np.testing.assert_array_equal(accepted[row].numpy(), expected.infos.accepted)
    gibbs_states, _ = _run("gibbs-random", torch.tensor(chains), torch.float64)
    for row, chain in enumerate(chains):
        expected = reference_gibbs.sample(
            NumpyCounterGenerator(SEED, chain), np.zeros(4, dtype=int), BIGRAM.conditional_log_probs, 6
        )
        np.testing.assert_array_equal(gibbs_states[row].numpy(), expected.states.x)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_same_chain_on_cuda_and_cpu(kind):
    chains = torch.tensor([0, 1, 2, 9999, 123456])
    for on_cpu, on_cuda in zip(
        _run(kind, chains, torch.float64), _run(kind, chains, torch.float64, "cuda"), strict=True
    ):
        assert torch.equal(on_cpu, on_cuda.cpu())


def test_a_torch_generator_does_not_have_the_property():
    # The contrast that motivates the counter generator: a shared stream hands chain 0 different numbers
    # in a batch of 10 than in a batch of 10,000 (the stream fills the uniforms column by column, so a
    # chain's second uniform is number B of the stream), so its chains change with the batch.
    def first_rows(num_chains):
        generator = torch.Generator().manual_seed(SEED)
        x0 = torch.zeros(num_chains, dtype=torch.int64)
        state = metropolis_hastings.init(x0, twin_of(CATEGORICAL).log_prob)
        from textsampling.torch.randomness import draw_uniforms

        for step in range(5):
            uniforms = draw_uniforms(generator, step, 2, num_chains=num_chains)
            state, _ = metropolis_hastings.step(
                uniforms, state, twin_of(CATEGORICAL).log_prob, twin_of(proposals.UniformCategoricalProposal(1000))
            )
        return state.x[:10]

    assert not torch.equal(first_rows(10), first_rows(BIG))
