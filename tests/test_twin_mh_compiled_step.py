"""A ``torch.compile``d MH step, run by :func:`textsampling.torch.chain.run`, gives :func:`sample`'s trace.

The README's Performance section suggests it for the CPU: the counter uniforms as the twin draws them
(numba's loop where installed) and the step compiled by Inductor into one loop, without its value
checks. Compiled, the step traces the torch operations (the numba decision loop is skipped under
``torch.compile``); eager, :func:`sample` runs numba's loop where installed, else the same torch
operations. Their states and decisions are compared bit for bit, their log acceptance probabilities
as numbers (which NaN differs): no statistics, no timing.
"""

import numpy as np
import pytest
import torch

from textsampling.torch import chain, metropolis_hastings
from textsampling.torch.proposals import UniformCategoricalProposal
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.targets import Categorical

SEED = 20261202
NUM_CATEGORIES = 50


@pytest.mark.slow  # compiles one kernel each: seconds with a warm Inductor cache, longer cold on 2 busy cores
@pytest.mark.parametrize(
    "dtype, num_chains",
    # 1,003 chains: not a multiple of any vector width, so the compiled loop's scalar tail runs too;
    # 10,003: also past BRANCH_FREE_MIN_ENTRIES, where the selects pick bit patterns (the README's case)
    [(torch.float32, 1003), (torch.float32, 10003), (torch.float64, 10003)],
)
def test_a_compiled_step_run_by_chain_run_gives_the_trace_of_sample(dtype, num_chains):
    assert 1003 < metropolis_hastings.BRANCH_FREE_MIN_ENTRIES <= 10003
    logits = np.random.default_rng(0).normal(size=NUM_CATEGORIES) * 2.0
    logits[::7] = -np.inf  # states of probability zero: proposals there are rejected
    target = Categorical(logits, dtype=dtype)
    proposal = UniformCategoricalProposal(NUM_CATEGORIES, dtype=dtype)
    x0 = torch.arange(num_chains) % NUM_CATEGORIES  # some chains start at a state of probability zero
    rng = CounterGenerator(SEED, torch.arange(num_chains))
    expected = metropolis_hastings.sample(rng, x0, target.log_prob, proposal, 6)

    torch._dynamo.reset()

    def unchecked_step(uniforms, state, t):
        return metropolis_hastings.step(uniforms, state, target.log_prob, proposal, validate=False)

    compiled = torch.compile(unchecked_step)
    state = metropolis_hastings.init(x0, target.log_prob, proposal)
    got = chain.run(rng, state, compiled, metropolis_hastings.num_uniforms(proposal), 6)

    assert got.infos.accepted.any() and not got.infos.accepted.all()  # both decisions were made
    for field in ("x", "log_prob"):
        assert torch.equal(getattr(got.states, field), getattr(expected.states, field)), field
    for field in ("proposal", "accepted"):
        assert torch.equal(getattr(got.infos, field), getattr(expected.infos, field)), field
    # The log acceptance probabilities: the same numbers, NaN at the same places (a start and a proposal
    # both of probability zero: -inf - -inf). Not the same NaN: measured, Inductor's code gives the
    # all-ones NaN (0xffffffff in float32) where the eager operations give the default one (0xffc00000);
    # ATen's vectorised minimum, for one, marks NaN lanes by OR-ing an all-ones mask into the result.
    got_alpha, expected_alpha = got.infos.log_accept_prob, expected.infos.log_accept_prob
    assert torch.equal(got_alpha.isnan(), expected_alpha.isnan()) and expected_alpha.isnan().any()
    assert torch.equal(got_alpha.nan_to_num(nan=1.0), expected_alpha.nan_to_num(nan=1.0))
