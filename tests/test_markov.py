"""Exact Markov-chain tools against closed forms (two-state chain, biased cycle) and independent solvers."""

import numpy as np
import pytest

from textsampling import markov


def two_state(a, b):
    # Move 0 -> 1 with probability a, 1 -> 0 with probability b.
    return np.array([[1 - a, a], [b, 1 - b]])


def biased_cycle(num_states, forward):
    # Step +1 with probability `forward`, -1 otherwise: doubly stochastic, so uniform is stationary.
    matrix = np.zeros((num_states, num_states))
    for i in range(num_states):
        matrix[i, (i + 1) % num_states] += forward
        matrix[i, (i - 1) % num_states] += 1 - forward
    return matrix


def random_kernel(seed, num_states=6):
    rng = np.random.default_rng(seed)
    matrix = rng.random((num_states, num_states)) + 0.05
    return matrix / matrix.sum(axis=1, keepdims=True)


def test_two_state_stationary_law_is_b_a_over_a_plus_b():
    a, b = 0.3, 0.05
    pi = markov.stationary_distribution(two_state(a, b))
    np.testing.assert_allclose(pi, np.array([b, a]) / (a + b), rtol=0, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stationary_law_matches_left_eigenvector_and_matrix_power(seed):
    matrix = random_kernel(seed)
    pi = markov.stationary_distribution(matrix)
    assert markov.stationarity_residual(matrix, pi) < 1e-14
    # Independent route 1: the left eigenvector of eigenvalue 1.
    eigenvalues, vectors = np.linalg.eig(matrix.T)
    vector = np.real(vectors[:, np.argmin(np.abs(eigenvalues - 1))])
    np.testing.assert_allclose(pi, vector / vector.sum(), atol=1e-12)
    # Independent route 2: every row of P^n converges to pi (positive entries: aperiodic, irreducible).
    np.testing.assert_allclose(np.linalg.matrix_power(matrix, 200)[0], pi, atol=1e-12)


def test_a_periodic_chain_still_has_its_unique_stationary_law():
    # A pure rotation has period 5 (P^n never converges) but one closed class: pi is uniform.
    rotation = biased_cycle(5, 1.0)
    np.testing.assert_allclose(markov.stationary_distribution(rotation), np.full(5, 0.2), atol=1e-14)
    # ...and its mixing curve from a point mass never decays.
    np.testing.assert_allclose(markov.mixing_curve(rotation, 0, 10), 0.8, atol=1e-14)


def test_several_closed_classes_have_no_unique_stationary_law():
    reducible = np.zeros((4, 4))
    reducible[:2, :2] = two_state(0.5, 0.5)
    reducible[2:, 2:] = two_state(0.2, 0.7)
    with pytest.raises(ValueError, match="not unique"):
        markov.stationary_distribution(reducible)


def test_is_irreducible():
    assert markov.is_irreducible(biased_cycle(5, 1.0))  # a pure rotation still reaches everything
    assert markov.is_irreducible(random_kernel(0))
    block = np.zeros((4, 4))
    block[:2, :2] = block[2:, 2:] = 0.5
    assert not markov.is_irreducible(block)
    absorbing = np.array([[0.5, 0.5], [0.0, 1.0]])  # 0 reaches 1, 1 never returns
    assert not markov.is_irreducible(absorbing)


def test_detailed_balance_residual_of_a_biased_cycle():
    # Uniform pi is stationary, but the flow i -> i+1 is p/K and the reverse (1-p)/K.
    forward = 0.8
    matrix = biased_cycle(5, forward)
    uniform = np.full(5, 0.2)
    assert markov.stationarity_residual(matrix, uniform) < 1e-15
    np.testing.assert_allclose(markov.detailed_balance_residual(matrix, uniform), (2 * forward - 1) / 5, atol=1e-15)
    # A symmetric kernel is reversible with respect to the uniform law.
    assert markov.detailed_balance_residual(biased_cycle(5, 0.5), uniform) < 1e-16


def test_tv_distance():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert markov.tv_distance(p, q) == pytest.approx(0.5, abs=1e-15)
    assert markov.tv_distance(q, p) == markov.tv_distance(p, q)
    assert markov.tv_distance(p, p) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        markov.tv_distance(p, [0.5, 0.5])


def test_mixing_curve_of_the_two_state_chain_decays_as_one_minus_a_minus_b_to_the_t():
    a, b = 0.3, 0.1
    curve = markov.mixing_curve(two_state(a, b), 0, 12)
    pi0 = b / (a + b)
    expected = (1 - pi0) * np.abs(1 - a - b) ** np.arange(13)
    np.testing.assert_allclose(curve, expected, atol=1e-14)


def test_mixing_curve_never_increases_and_accepts_an_initial_law():
    matrix = random_kernel(3)
    curve = markov.mixing_curve(matrix, np.full(6, 1 / 6), 20)
    assert curve.shape == (21,)
    assert np.all(np.diff(curve) <= 1e-15)
    # Starting from pi itself, the curve is zero throughout.
    pi = markov.stationary_distribution(matrix)
    assert np.max(markov.mixing_curve(matrix, pi, 5, distribution=pi)) < 1e-14


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones((2, 3)) / 3, "square"),
        (np.zeros((0, 0)), "square"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), "non-negative"),
        (np.array([[0.5, 0.4], [0.5, 0.5]]), "row 0 sums"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), "finite"),
    ],
)
def test_bad_transition_matrix(matrix, message):
    with pytest.raises(ValueError, match=message):
        markov.stationary_distribution(matrix)


def test_bad_distributions_and_arguments():
    matrix = two_state(0.2, 0.3)
    with pytest.raises(ValueError, match="2 entries"):
        markov.stationarity_residual(matrix, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="sum to 1"):
        markov.detailed_balance_residual(matrix, [0.6, 0.6])
    with pytest.raises(ValueError, match="non-negative"):
        markov.tv_distance([1.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="initial state index"):
        markov.mixing_curve(matrix, 2, 3)
    with pytest.raises(ValueError, match="num_steps"):
        markov.mixing_curve(matrix, 0, -1)
    with pytest.raises(ValueError, match="initial"):
        markov.mixing_curve(matrix, [1.0], 3)
