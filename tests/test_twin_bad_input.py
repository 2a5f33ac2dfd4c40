"""Bad input to the torch twins: a clear ValueError/TypeError naming the argument, never a silent broadcast.

Mismatched devices are exercised with PyTorch's "meta" device (tensors without storage), so the
checks run without a GPU; the messages name each argument and its device.
"""

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.reference import proposals
from textsampling.torch import annealing, categorical, gibbs, importance, metropolis_hastings, rejection
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

F64 = torch.float64
CATEGORICAL = targets.Categorical([0.0, 1.0, 2.0])
TARGET = twin_of(CATEGORICAL, F64)
PROPOSAL = twin_of(proposals.UniformCategoricalProposal(3), F64)
BIGRAM = twin_of(targets.FixedLengthBigram([0.0, 1.0], [[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]], 3), F64)


def _mh_state(num_chains=4):
    return metropolis_hastings.init(torch.zeros(num_chains, dtype=torch.int64), TARGET.log_prob)


def _uniforms(*shape, dtype=F64, device="cpu"):
    return torch.full(shape, 0.5, dtype=dtype, device=device)


CASES = [
    # MH: devices, dtypes, batch shapes, values
    (
        "mh uniforms on another device",
        lambda: metropolis_hastings.step(_uniforms(4, 2, device="meta"), _mh_state(), TARGET.log_prob, PROPOSAL),
        ValueError,
        "uniforms on meta",
    ),
    (
        "mh dtype mismatch",
        lambda: metropolis_hastings.step(_uniforms(4, 2, dtype=torch.float32), _mh_state(), TARGET.log_prob, PROPOSAL),
        TypeError,
        "dtype",
    ),
    (
        "mh batch mismatch",
        lambda: metropolis_hastings.step(_uniforms(5, 2), _mh_state(), TARGET.log_prob, PROPOSAL),
        ValueError,
        "state.x",
    ),
    (
        "mh too few uniforms",
        lambda: metropolis_hastings.step(_uniforms(4, 1), _mh_state(), TARGET.log_prob, PROPOSAL),
        ValueError,
        r"\(B, 2\)",
    ),
    (
        "mh uniforms outside (0, 1)",
        lambda: metropolis_hastings.step(torch.zeros(4, 2, dtype=F64), _mh_state(), TARGET.log_prob, PROPOSAL),
        ValueError,
        "open interval",
    ),
    (
        "mh state not an MHState",
        lambda: metropolis_hastings.step(_uniforms(4, 2), (torch.zeros(4), torch.zeros(4)), TARGET.log_prob, PROPOSAL),
        TypeError,
        "state",
    ),
    (
        "mh +inf log-density",
        lambda: metropolis_hastings.init(torch.zeros(3, dtype=torch.int64), lambda x: torch.full((3,), torch.inf)),
        ValueError,
        r"\+inf",
    ),
    (
        "mh log_prob_fn wrong shape",
        lambda: metropolis_hastings.init(torch.zeros(3, dtype=torch.int64), lambda x: torch.zeros(1)),
        ValueError,
        "log_prob_fn",
    ),
    (
        "mh rng not a generator",
        lambda: metropolis_hastings.sample(
            np.random.default_rng(0), torch.zeros(3, dtype=torch.int64), TARGET.log_prob, PROPOSAL, 2
        ),
        TypeError,
        "rng",
    ),
    (
        "mh generator serves other chains",
        lambda: metropolis_hastings.sample(
            CounterGenerator(0, torch.arange(5)),
            torch.zeros(3, dtype=torch.int64),
            TARGET.log_prob,
            PROPOSAL,
            2,
            dtype=F64,
        ),
        ValueError,
        "num_chains",
    ),
    (
        "mh generator on another device",
        lambda: metropolis_hastings.sample(
            CounterGenerator(0, torch.arange(3, device="meta")),
            torch.zeros(3, dtype=torch.int64),
            TARGET.log_prob,
            PROPOSAL,
            2,
        ),
        ValueError,
        "rng",
    ),
    # proposals
    (
        "proposal dtype",
        lambda: PROPOSAL.propose(_uniforms(4, 1, dtype=torch.float32), torch.zeros(4, dtype=torch.int64)),
        TypeError,
        "uniforms",
    ),
    (
        "proposal x batch",
        lambda: PROPOSAL.propose(_uniforms(4, 1), torch.zeros(3, dtype=torch.int64)),
        ValueError,
        "x must have shape",
    ),
    (
        "proposal x device",
        lambda: PROPOSAL.propose(_uniforms(4, 1), torch.zeros(4, dtype=torch.int64, device="meta")),
        ValueError,
        "x on meta",
    ),
    (
        "random walk x dtype",
        lambda: twin_of(proposals.GaussianRandomWalkProposal(1.0), F64).propose(_uniforms(4, 2), torch.zeros(4)),
        TypeError,
        "x must have",
    ),
    # targets
    ("target float states", lambda: TARGET.log_prob(torch.zeros(3)), TypeError, "states"),
    (
        "target states device",
        lambda: TARGET.log_prob(torch.zeros(3, dtype=torch.int64, device="meta")),
        ValueError,
        "states is on meta",
    ),
    (
        "sequence target shape",
        lambda: BIGRAM.log_prob(torch.zeros(3, 4, dtype=torch.int64)),
        ValueError,
        r"\(N,\) \+ \(3,\)",
    ),
    (
        "conditional position shape",
        lambda: BIGRAM.conditional_log_probs(torch.zeros(3, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)),
        ValueError,
        "position",
    ),
    (
        "conditional position range",
        lambda: BIGRAM.conditional_log_probs(torch.zeros(3, 3, dtype=torch.int64), 3),
        ValueError,
        "position",
    ),
    ("twin of an unknown object", lambda: twin_of(object()), TypeError, "reference"),
    ("twin dtype", lambda: twin_of(CATEGORICAL, torch.float16), TypeError, "dtype"),
    # categorical
    (
        "categorical rows",
        lambda: categorical.categorical_from_uniforms(_uniforms(3), torch.zeros(2, 4, dtype=F64)),
        ValueError,
        "one row of logits per uniform",
    ),
    (
        "categorical dtype",
        lambda: categorical.categorical_from_uniforms(_uniforms(3, dtype=torch.float32), torch.zeros(4, dtype=F64)),
        TypeError,
        "dtype",
    ),
    (
        "categorical device",
        lambda: categorical.categorical_from_uniforms(_uniforms(3), torch.zeros(4, dtype=F64, device="meta")),
        ValueError,
        "logits on meta",
    ),
    (
        "categorical NaN",
        lambda: categorical.categorical_from_uniforms(_uniforms(1), torch.tensor([0.0, float("nan")], dtype=F64)),
        ValueError,
        "NaN",
    ),
    (
        "categorical all -inf",
        lambda: categorical.categorical_from_uniforms(_uniforms(1), torch.full((2,), -torch.inf, dtype=F64)),
        ValueError,
        "-inf everywhere",
    ),
    # Gibbs
    (
        "gibbs uniforms width",
        lambda: gibbs.step(
            _uniforms(3, 3), gibbs.GibbsState(torch.zeros(3, 3, dtype=torch.int64)), BIGRAM.conditional_log_probs
        ),
        ValueError,
        r"\(B, 2\)",
    ),
    (
        "gibbs batch",
        lambda: gibbs.step(
            _uniforms(2, 2), gibbs.GibbsState(torch.zeros(3, 3, dtype=torch.int64)), BIGRAM.conditional_log_probs
        ),
        ValueError,
        "state.x",
    ),
    (
        "gibbs conditional shape",
        lambda: gibbs.step(
            _uniforms(3, 2),
            gibbs.GibbsState(torch.zeros(3, 3, dtype=torch.int64)),
            lambda x, p: torch.zeros(2, 2, dtype=F64),
        ),
        ValueError,
        "conditional_log_probs",
    ),
    (
        "gibbs conditional NaN",
        lambda: gibbs.step(
            _uniforms(3, 2),
            gibbs.GibbsState(torch.zeros(3, 3, dtype=torch.int64)),
            lambda x, p: torch.full((3, 2), float("nan"), dtype=F64),
        ),
        ValueError,
        "NaN",
    ),
    ("gibbs scan", lambda: gibbs.num_uniforms("diagonal", 3), ValueError, "scan"),
    # annealing
    (
        "annealing temperature shape",
        lambda: annealing.step(
            _uniforms(4, 2), _mh_state(), TARGET.log_prob, PROPOSAL, temperature=torch.ones(3, dtype=F64)
        ),
        ValueError,
        "temperature",
    ),
    (
        "annealing temperature value",
        lambda: annealing.step(_uniforms(4, 2), _mh_state(), TARGET.log_prob, PROPOSAL, temperature=0.0),
        ValueError,
        "temperature",
    ),
    ("annealing schedule", lambda: annealing.check_temperatures(torch.tensor([1.0, -1.0])), ValueError, "temperatures"),
    # importance and rejection
    (
        "importance all -inf chain",
        lambda: importance.effective_sample_size(torch.tensor([[0.0, -1.0], [-torch.inf, -torch.inf]])),
        ValueError,
        "all -inf in some chain",
    ),
    ("importance shapes", lambda: importance.log_weights(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "shape"),
    (
        "rejection envelope",
        lambda: rejection.log_accept_probability(torch.tensor([[1.0]]), torch.tensor([[0.0]]), 0.0),
        ValueError,
        "too small",
    ),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(name, call, error, message):
    with pytest.raises(error, match=message):
        call()
