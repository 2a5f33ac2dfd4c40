"""Proposals: the uniform -> variate maps, exact proposal probabilities, and consistent Hastings terms.

A one-uniform proposal is checked without randomness: over the midpoints of a grid of ``n`` cells,
the fraction mapped to ``y`` differs from ``q(y | x)`` by at most ``2 / n`` (each of the two ends of
the interval of ``u`` that selects ``y`` cuts at most one cell).
"""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from textsampling import randomness
from textsampling.randomness import CounterGenerator, draw_uniforms
from textsampling.reference import proposals as pr

GRID = 2000
MIDPOINTS = (np.arange(GRID) + 0.5) / GRID


def grid_frequencies(function, num_outcomes):
    counts = np.zeros(num_outcomes)
    for u in MIDPOINTS:
        counts[function(u)] += 1
    return counts / GRID


def test_integer_from_uniform_is_floor_u_n_and_never_n():
    np.testing.assert_array_equal(randomness.integer_from_uniform([1e-300, 0.2499, 0.25, 1 - 2**-53], 4), [0, 0, 1, 3])


def test_box_muller_is_standard_normal():
    # Kolmogorov–Smirnov on 20,000 normals from a fixed seed; false-fail rate 1e-4.
    rng = np.random.default_rng(5)
    z = randomness.normal_from_uniforms(rng.random(20_000), rng.random(20_000))
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # The documented map: u2 = 1/2 gives cos(pi) = -1.
    np.testing.assert_allclose(randomness.normal_from_uniforms(np.exp(-2.0), 0.5), -2.0, atol=1e-15)


@pytest.mark.parametrize("rng", [np.random.default_rng(7), CounterGenerator(7, 3)], ids=["numpy", "counter"])
def test_draw_uniforms_for_steps_equals_one_draw_per_step(rng):
    import copy

    together = randomness.draw_uniforms_for_steps(copy.deepcopy(rng), 4, 5, 3)
    one_by_one = np.stack([draw_uniforms(rng, 4 + t, 3) for t in range(5)])
    np.testing.assert_array_equal(together, one_by_one)
    # Block-wise iteration across block boundaries gives the same rows.
    iterated = np.stack(list(randomness.iterate_step_uniforms(copy.deepcopy(rng), 9, 7, 3, block_size=3)))
    np.testing.assert_array_equal(iterated, np.stack([draw_uniforms(rng, 9 + t, 3) for t in range(7)]))


def discrete_cases():
    return [
        (pr.UniformCategoricalProposal(5), [np.int64(k) for k in range(5)]),
        (pr.RingStepProposal(5, 0.7), [np.int64(k) for k in range(5)]),
        (
            pr.IndependenceProposal(pr.IndependentCategorical([0.0, 1.0, -1.0, 0.5, -np.inf])),
            [np.int64(k) for k in range(5)],
        ),
        (
            pr.SingleSiteProposal(3, 2, [[0.0, 1.0, -2.0], [0.5, -np.inf, 0.0]]),
            [np.array(s) for s in itertools.product(range(3), repeat=2)],
        ),
    ]


@pytest.mark.parametrize("proposal, space", discrete_cases(), ids=["uniform", "ring", "independence", "single-site"])
def test_log_prob_is_a_distribution_and_matches_propose(proposal, space):
    index = {np.asarray(s).tobytes(): i for i, s in enumerate(space)}
    for x in space:
        log_q = np.array([proposal.log_prob(y, x) for y in space])
        # q(. | x) sums to 1 over the space.
        np.testing.assert_allclose(logsumexp(log_q), 0.0, atol=1e-12)
        if proposal.num_uniforms == 1:
            # Where propose lands, over a grid of uniforms, matches q(. | x) to the grid resolution.
            def landing(u, x=x):
                return index[np.asarray(proposal.propose([u], x)[0]).tobytes()]

            frequencies = grid_frequencies(landing, len(space))
        else:
            # Position uniforms at the L cell midpoints (exact), token uniforms on a 500-cell grid.
            counts = np.zeros(len(space))
            positions = (np.arange(proposal.length) + 0.5) / proposal.length
            for u0 in positions:
                for u1 in MIDPOINTS[::4]:
                    counts[index[proposal.propose([u0, u1], x)[0].tobytes()]] += 1
            frequencies = counts / counts.sum()
        np.testing.assert_allclose(frequencies, np.exp(log_q), atol=2.5 * 4 / GRID)
        # The Hastings term returned by propose is log q(x|y) - log q(y|x) from the same log_prob.
        for u in MIDPOINTS[::97]:
            uniforms = np.full(proposal.num_uniforms, u)
            y, log_q_ratio = proposal.propose(uniforms, x)
            expected = proposal.log_prob(x, y) - proposal.log_prob(y, x)
            assert log_q_ratio == pytest.approx(expected, abs=1e-12) or log_q_ratio == expected
            assert proposal.log_q_ratio(y, x) == pytest.approx(log_q_ratio, abs=1e-12)


def test_ring_step_is_asymmetric_and_uniform_is_symmetric():
    ring = pr.RingStepProposal(4, 0.9)
    y, log_q_ratio = ring.propose([0.5], np.int64(1))
    assert y == 2 and log_q_ratio == pytest.approx(np.log(0.1) - np.log(0.9))
    y, log_q_ratio = ring.propose([0.95], np.int64(0))
    assert y == 3 and log_q_ratio == pytest.approx(np.log(0.9) - np.log(0.1))
    assert pr.UniformCategoricalProposal(4).propose([0.6], np.int64(0)) == (2, 0.0)


def test_single_site_proposal_changes_one_position_and_handles_impossible_reverse():
    proposal = pr.SingleSiteProposal(3, 4, [0.0, 0.0, -np.inf])
    x = np.array([2, 0, 1, 0])  # token 2 is impossible under r, so leaving it cannot be reversed
    y, log_q_ratio = proposal.propose([0.1, 0.9], x)  # position floor(0.4) = 0
    assert y[0] != 2 and np.array_equal(y[1:], x[1:])
    assert log_q_ratio == -np.inf
    assert proposal.log_prob(np.array([1, 1, 1, 0]), x) == -np.inf  # two changes


def test_gaussian_random_walk_uses_box_muller_per_dimension():
    proposal = pr.GaussianRandomWalkProposal(0.5, dimension=2)
    uniforms = np.array([0.3, 0.1, 0.7, 0.6])
    y, log_q_ratio = proposal.propose(uniforms, np.array([1.0, -1.0]))
    expected = np.array([1.0, -1.0]) + 0.5 * randomness.normal_from_uniforms([0.3, 0.7], [0.1, 0.6])
    np.testing.assert_array_equal(y, expected)
    assert log_q_ratio == 0.0 and proposal.num_uniforms == 4


def test_independent_categorical_and_uniform_sequences_by_grid():
    categorical = pr.IndependentCategorical([0.0, np.log(3.0), -np.inf, np.log(4.0)])
    states = categorical.sample(MIDPOINTS[:, None])
    np.testing.assert_allclose(np.bincount(states, minlength=4) / GRID, [0.125, 0.375, 0.0, 0.5], atol=2 / GRID)
    np.testing.assert_allclose(np.exp(categorical.log_prob(np.arange(4))), [0.125, 0.375, 0.0, 0.5], atol=1e-15)
    sequences = pr.IndependentUniformSequences(3, 2)
    grid = np.array(list(itertools.product(MIDPOINTS[::200], repeat=2)))  # 10 x 10 grid
    drawn = sequences.sample(grid)
    counts = np.bincount(drawn[:, 0] * 3 + drawn[:, 1], minlength=9)
    assert counts.min() >= 9 and counts.max() <= 16  # 100 points, 1/9 each up to a cell per axis
    np.testing.assert_allclose(sequences.log_prob(drawn), -2 * np.log(3))
    assert sequences.log_prob(np.array([[0, 3]]))[0] == -np.inf


def test_independent_gaussian_density_and_draws():
    gaussian = pr.IndependentGaussian([1.0, -2.0], 0.5)
    points = np.array([[0.0, 0.0], [1.0, -2.0]])
    expected = stats.norm(1.0, 0.5).logpdf(points[:, 0]) + stats.norm(-2.0, 0.5).logpdf(points[:, 1])
    np.testing.assert_allclose(gaussian.log_prob(points), expected, rtol=1e-13)
    # KS on the first coordinate of 20,000 draws; false-fail rate 1e-4.
    draws = gaussian.sample(np.random.default_rng(2).random((20_000, 4)))
    assert draws.shape == (20_000, 2)
    assert stats.kstest(draws[:, 0], stats.norm(1.0, 0.5).cdf).pvalue > 1e-4


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: pr.RingStepProposal(2, 0.5), ValueError, "num_categories"),
        (lambda: pr.RingStepProposal(4, 1.0), ValueError, "forward_probability"),
        (lambda: pr.RingStepProposal(4, float("nan")), ValueError, "forward_probability"),
        (lambda: pr.UniformCategoricalProposal(0), ValueError, "num_categories"),
        (lambda: pr.SingleSiteProposal(3, 2, [0.0, 1.0]), ValueError, "token_logits"),
        (lambda: pr.SingleSiteProposal(3, 2, [0.0, np.nan, 1.0]), ValueError, "token_logits"),
        (lambda: pr.GaussianRandomWalkProposal(0.0), ValueError, "scale"),
        (lambda: pr.GaussianRandomWalkProposal(-1.0), ValueError, "scale"),
        (lambda: pr.IndependentGaussian([0.0], "wide"), TypeError, "scale"),
        (lambda: pr.IndependentCategorical([np.nan, 0.0]), ValueError, "NaN"),
        (lambda: pr.IndependenceProposal(object()), TypeError, "independent"),
    ],
)
def test_bad_construction(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_bad_propose_arguments():
    with pytest.raises(ValueError, match="uniforms"):
        pr.UniformCategoricalProposal(3).propose([0.0], np.int64(0))
    with pytest.raises(ValueError, match="uniforms"):
        pr.RingStepProposal(3, 0.5).propose([0.2, 0.3], np.int64(0))
    with pytest.raises(ValueError, match="x must hold values in 0..2"):
        pr.RingStepProposal(3, 0.5).propose([0.2], np.int64(3))
    with pytest.raises(TypeError, match="x must hold integers"):
        pr.SingleSiteProposal(3, 2).propose([0.2, 0.3], np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        pr.SingleSiteProposal(3, 2).propose([0.2, 0.3], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="dimension"):
        pr.GaussianRandomWalkProposal(1.0, 2).propose([0.1, 0.2, 0.3, 0.4], np.zeros(3))
    with pytest.raises(ValueError, match=r"uniforms must have shape \(N, 1\)"):
        pr.IndependentCategorical([0.0, 0.0]).sample([0.5])
    with pytest.raises(TypeError, match="rng"):
        randomness.draw_uniforms_for_steps(0, 0, 3, 1)
