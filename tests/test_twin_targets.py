"""Torch target twins against the NumPy targets, on every enumerated state (exact answers first).

Log-densities are sums of the reference's own table entries in the reference's order, so in float64
they must be *bit-identical*; masked conditionals go through a ``logsumexp`` (torch's and SciPy's may
differ in the last bits) and must agree to 1e-13 with the same ``-inf`` pattern. float32 twins agree
with float64 to float32 rounding. Deterministic; no statistics.
"""

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.targets.base import PAD
from textsampling.torch import targets as torch_targets
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
F64 = torch.float64


def _rng(seed):
    return np.random.default_rng(seed)


def _bigram_lm():
    lm = targets.BigramLM.random(_rng(0), 4, 4, concentration=0.7, min_length=2)
    return lm


def _cases():
    logits = _rng(1).normal(size=6)
    logits[2] = -np.inf
    transition = _rng(2).normal(size=(3, 4))
    transition[1, 2] = -np.inf  # an impossible transition
    return {
        "categorical": targets.Categorical(logits),
        "bigram-lm": _bigram_lm(),
        "fixed-length-bigram": targets.FixedLengthBigram(_rng(3).normal(size=3), transition, 4),
        "pairwise": targets.PairwiseChain(_rng(4).normal(size=(4, 3)), _rng(5).normal(size=(3, 3, 3))),
        "ising": targets.PairwiseChain.ising(5, 0.7, -0.2),
        "keyword": targets.KeywordTarget(_bigram_lm(), [1, 3], targets.TopicSimilarity([0, 2], 0.9), gamma=0.6),
        "keyword-no-similarity": targets.KeywordTarget(_bigram_lm().fixed_length(3), [2], None, gamma=1.3),
    }


CASES = _cases()


def _with_invalid_states(target):
    """The enumerated states plus states outside the space (token out of range, token after PAD)."""
    states = target.states
    if not target.state_shape:
        return np.concatenate([states, [-1, target.num_categories, 10**6]])
    extra = states[:3].copy()
    extra[0, 0] = target.vocab_size  # token out of range
    extra[1, -1] = -7
    if isinstance(getattr(target, "base", target), targets.BigramLM):
        extra[2] = PAD
        extra[2, 1] = 0  # a token after a PAD (malformed)
    return np.concatenate([states, extra])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_log_prob_is_bit_identical_in_float64(case, device):
    target = CASES[case]
    twin = twin_of(target, F64, device)
    states = _with_invalid_states(target)
    expected = target.log_prob(states)
    got = twin.log_prob(torch.tensor(states, device=device)).cpu().numpy()
    np.testing.assert_array_equal(got, expected)
    assert np.isinf(expected).any() and np.isfinite(expected).any()  # both kinds are exercised


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(c for c in CASES if c != "categorical"))
def test_masked_conditionals_agree(case, device):
    target = CASES[case]
    twin = twin_of(target, F64, device)
    states = target.states
    positions = np.arange(states.shape[0]) % target.length
    with np.errstate(invalid="ignore"):  # the reference's brute force meets -inf - -inf on purpose
        expected = target.conditional_log_probs(states, positions)
    got = (
        twin.conditional_log_probs(torch.tensor(states, device=device), torch.tensor(positions, device=device))
        .cpu()
        .numpy()
    )
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-13, atol=1e-13)
    # an int position means "this position in every row"
    by_int = twin.conditional_log_probs(torch.tensor(states, device=device), 1).cpu().numpy()
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(by_int, target.conditional_log_probs(states, 1), rtol=1e-13, atol=1e-13)


def test_brute_force_and_closed_form_conditionals_agree_in_the_twin():
    target = twin_of(CASES["pairwise"], F64)
    states = torch.tensor(CASES["pairwise"].states)
    for position in range(4):
        torch.testing.assert_close(
            target.conditional_log_probs(states, position), target.brute_force_conditional_log_probs(states, position)
        )


def test_bigram_lm_lengths_and_next_token_log_probs():
    lm = CASES["bigram-lm"]
    twin = twin_of(lm, F64)
    states = lm.states
    np.testing.assert_array_equal(twin.lengths(torch.tensor(states)).numpy(), lm.lengths(states))
    np.testing.assert_array_equal(twin.sequence_log_probs(torch.tensor(states)).numpy(), lm.sequence_log_probs(states))
    prefixes = np.array([[PAD, PAD], [2, PAD], [0, 3], [1, 1]])
    np.testing.assert_array_equal(
        twin.next_token_log_probs(torch.tensor(prefixes)).numpy(), lm.next_token_log_probs(prefixes)
    )
    # Width 0 (no prefix at all): the initial law, END impossible. (The reference raises on width 0.)
    empty = twin.next_token_log_probs(torch.zeros((2, 0), dtype=torch.int64)).numpy()
    np.testing.assert_array_equal(empty, lm.next_token_log_probs(np.full((2, 1), PAD)))
    with pytest.raises(ValueError, match="prefix_states"):
        twin.next_token_log_probs(torch.tensor([[PAD, 1]]))


def test_gaussian_mixture_twin_and_its_1d_shapes():
    mixture = targets.GaussianMixture(
        [0.2, 0.5, 0.3], [[0.0, 1.0], [-2.0, 0.5], [3.0, -1.0]], [[1.0, 0.3], [0.5, 2.0], [1.5, 1.0]]
    )
    points = _rng(6).normal(size=(500, 2)) * 3
    got = twin_of(mixture, F64).log_prob(torch.tensor(points)).numpy()
    np.testing.assert_allclose(got, mixture.log_prob(points), rtol=1e-14, atol=1e-14)
    line = targets.GaussianMixture([0.5, 0.5], [-1.0, 1.0], [0.5, 0.7])
    x = _rng(7).normal(size=100)
    twin_line = twin_of(line, F64)
    # (N,) and (N, 1) are the same batch for a 1-D mixture
    torch.testing.assert_close(twin_line.log_prob(torch.tensor(x)), twin_line.log_prob(torch.tensor(x[:, None])))
    np.testing.assert_allclose(
        twin_line.log_prob(torch.tensor(x)).numpy(), line.log_prob(x[:, None]), rtol=1e-14, atol=1e-14
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_twin_is_float64_rounded(case):
    target = CASES[case]
    states = torch.tensor(target.states)
    low, high = twin_of(target).log_prob(states), twin_of(target, F64).log_prob(states)
    assert low.dtype == torch.float32
    finite = torch.isfinite(high)
    assert torch.equal(torch.isfinite(low), finite)
    # a sum of at most ~10 float32 entries of size O(10): error well below 1e-4 absolute
    torch.testing.assert_close(low[finite].double(), high[finite], rtol=1e-5, atol=1e-4)


def test_twins_delegate_exact_answers_to_the_reference():
    target = CASES["fixed-length-bigram"]
    twin = twin_of(target)
    assert twin.log_normalizer() == target.log_normalizer()
    np.testing.assert_array_equal(twin.cell_probabilities(), target.cell_probabilities())
    np.testing.assert_array_equal(twin.cell_index(torch.tensor(target.states[:5])), np.arange(5))
    rebuilt = torch_targets.FixedLengthBigram(target.initial_logits, target.transition_logits, 4)
    torch.testing.assert_close(
        rebuilt.log_prob(torch.tensor(target.states)), twin.log_prob(torch.tensor(target.states))
    )
    assert twin.to(dtype=F64).dtype == F64
