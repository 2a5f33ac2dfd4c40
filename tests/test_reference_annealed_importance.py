r"""Annealed importance sampling, exactly: :math:`\mathbb{E}[w\,\mathbf 1\{x_K = s\}] = \rho(s)` on enumerable targets.

The exact law of one rung is built from the step's own uniforms-to-move map (one particle): the proposal
uniforms are enumerated cell by cell (each cell of the ``floor``/inverse-CDF rule maps to one proposal),
and the accept uniform is split at the step's own :math:`\alpha` (read from its info) into "accepted"
(probability :math:`\alpha`) and "rejected". Each branch carries the weight factor the step itself wrote,
so :math:`A_k[i, j] = \mathbb{E}[e^{\Delta\log w}\, \mathbf 1\{x_k = j\} \mid x_{k-1} = i]` and

.. math::
    m_K = p_0\, A_1 A_2 \cdots A_K, \qquad m_K(s) = \mathbb{E}[w\,\mathbf 1\{x_K = s\}] \overset{!}{=} \rho(s),
    \qquad \textstyle\sum_s m_K(s) = \mathbb{E}[\hat Z] \overset{!}{=} Z,

to 1e-12, for any ladder. The gallery's wrong rungs must miss this. The statistical test then runs the
sampler and compares :math:`\hat Z` and the weighted histogram with exact values, with a Bernstein bound
built from the exact variance and the exact largest weight (both from the same propagation).
"""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling.gallery.tempering import CASES
from textsampling.randomness import CounterGenerator, categorical_from_uniforms
from textsampling.reference import annealed_importance as ais
from textsampling.reference import proposals
from textsampling.targets import Categorical, PairwiseChain
from textsampling.targets.named import make_target

#: Uniforms that force the accept uniform below / above any threshold that matters: log(TINY) = -690,
#: and log(NEAR_ONE) = -1.1e-16 accepts only alpha = 1 (whose reject branch has probability 0).
TINY, NEAR_ONE = 1e-300, np.nextafter(1.0, 0.0)


def _bimodal():
    # Chapter 4's lesson on a ring of 10 states: two modes (0 and 5) separated by valleys 8 nats deep.
    return Categorical(4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10))


def _cases():
    categorical = make_target("categorical-small")
    bigram = make_target("bigram-small")
    bimodal = _bimodal()
    return {
        # target, base p0, MH proposal, the proposal uniforms' cells [(representative u, probability), ...]
        "categorical-small": (
            categorical,
            proposals.IndependentCategorical(np.log([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])),
            proposals.UniformCategoricalProposal(6),
            [[((j + 0.5) / 6, 1 / 6) for j in range(6)]],
        ),
        "bimodal-ring": (
            bimodal,
            proposals.IndependentCategorical(np.zeros(10)),
            proposals.RingStepProposal(10, 0.7),
            [[(0.35, 0.7), (0.85, 0.3)]],
        ),
        "bigram-small": (
            bigram,
            proposals.IndependentUniformSequences(3, 3),
            proposals.SingleSiteProposal(3, 3),
            [[((j + 0.5) / 3, 1 / 3) for j in range(3)]] * 2,
        ),
    }


CASES_BY_NAME = _cases()
LADDERS = {
    "one-rung": np.array([1.0]),
    "linear-4": ais.power_schedule(4),
    "power-6": ais.power_schedule(6, power=3.0),
    "repeated-rungs": np.array([0.2, 0.2, 0.7, 1.0, 1.0]),
}


def rung_operators(step_fn, target, base, proposal, cells, previous_beta, beta):
    r"""``(A, A2, largest)``: :math:`A[i,j] = \mathbb{E}[e^{\Delta}\mathbf 1\{x'=j\}\mid x=i]`, the same with
    :math:`e^{2\Delta}`, and the largest factor :math:`e^{\Delta}` of any branch of positive probability."""
    states = target.states
    log_rho = target.log_prob_all()
    log_base = np.asarray(base.log_prob(states), dtype=np.float64)
    num_states = target.num_states
    first, second = np.zeros((num_states, num_states)), np.zeros((num_states, num_states))
    largest = 0.0
    for i in range(num_states):
        if log_base[i] == -np.inf and previous_beta < 1.0:
            continue  # unreachable: gamma_(k-1) puts no mass there
        state = ais.AISState(states[i][None], log_rho[i : i + 1], log_base[i : i + 1], np.zeros(1), previous_beta)
        for combination in itertools.product(*cells):
            proposal_uniforms = [u for u, _ in combination]
            probability = np.prod([p for _, p in combination])
            for accept in (True, False):
                uniforms = np.array(proposal_uniforms + [TINY if accept else NEAR_ONE])
                new_state, info = step_fn(uniforms, state, target.log_prob, base, proposal, beta=beta)
                alpha = 0.0 if np.isnan(info.log_accept_prob[0]) else np.exp(info.log_accept_prob[0])
                branch = probability * (alpha if accept else 1.0 - alpha)
                if branch == 0.0:
                    continue
                factor = np.exp(new_state.log_weight[0])
                j = target.state_index(new_state.x)[0]
                first[i, j] += branch * factor
                second[i, j] += branch * factor**2
                largest = max(largest, factor)
    return first, second, largest


def exact_moments(step_fn, case, betas):
    r"""Exact :math:`m_K(s) = \mathbb{E}[w 1\{x_K=s\}]`, :math:`\mathbb{E}[w^2 1\{x_K=s\}]` and a bound on :math:`w`."""
    target, base, proposal, cells = case
    p0 = np.exp(np.asarray(base.log_prob(target.states), dtype=np.float64))
    assert abs(p0.sum() - 1.0) < 1e-12  # the base is normalised on the enumerated states
    first, second, bound, previous = p0, p0.copy(), 1.0, 0.0
    for beta in betas:
        a, a2, largest = rung_operators(step_fn, target, base, proposal, cells, previous, float(beta))
        first, second, bound, previous = first @ a, second @ a2, bound * largest, float(beta)
    return first, second, bound


@pytest.mark.parametrize("ladder", sorted(LADDERS))
@pytest.mark.parametrize("name", sorted(CASES_BY_NAME))
def test_the_weighted_law_is_exactly_rho(name, ladder):
    # E[w 1{x_K = s}] = rho(s) for every s, hence E[Z-hat] = Z: exact, no randomness.
    case = CASES_BY_NAME[name]
    target = case[0]
    first, _, _ = exact_moments(ais.step, case, LADDERS[ladder])
    rho = np.exp(target.log_prob_all())
    np.testing.assert_allclose(first, rho, rtol=1e-12, atol=1e-15)
    assert abs(first.sum() - np.exp(target.log_normalizer())) <= 1e-12 * np.exp(target.log_normalizer())


@pytest.mark.parametrize("bug", sorted(n for n, c in CASES.items() if c.algorithm == "annealed_importance"))
@pytest.mark.parametrize("name", sorted(CASES_BY_NAME))
def test_each_wrong_rung_misses_rho_exactly(name, bug):
    # Test of the test: the same exact computation on the gallery's wrong rung is off by far more than 1e-12.
    case = CASES_BY_NAME[name]
    rho = np.exp(case[0].log_prob_all())
    first, _, _ = exact_moments(CASES[bug].step, case, LADDERS["linear-4"])
    assert np.max(np.abs(first - rho) / rho.sum()) > 1e-3


def bernstein_half_width(variance, bound, num_samples, false_fail_rate):
    r"""Half-width :math:`t` with :math:`P(|\bar X - \mu| \ge t) \le` ``false_fail_rate`` for ``num_samples`` iid
    :math:`X` with variance ``variance`` and :math:`|X - \mu| \le` ``bound`` (Bernstein 1924):
    :math:`P \le 2\exp(-n t^2 / (2\sigma^2 + 2bt/3))`, solved for :math:`t`."""
    log_term = np.log(2.0 / false_fail_rate)
    linear = 2.0 * bound * log_term / 3.0
    return (linear + np.sqrt(linear**2 + 8.0 * num_samples * log_term * variance)) / (2.0 * num_samples)


FALSE_FAIL_RATE = 1e-4
#: A short ladder (two rungs) for the sampled tests: cheap per particle, and the gallery's bugs bias it
#: most. Particles per target: the fewest (in steps of 1000) at which the power test below passes.
STATISTICAL_LADDER = np.array([0.5, 1.0])
NUM_PARTICLES = {"categorical-small": 2000, "bigram-small": 7000}


@pytest.mark.parametrize("name", ["categorical-small", "bigram-small"])
def test_the_sampler_estimates_z_and_the_weighted_histogram(name):
    # One run of NUM_PARTICLES particles (fixed seed). Z-hat and each state's weighted frequency
    # mean(w 1{x_K = s}) are means of iid bounded variables with exactly known mean, variance and bound
    # (the exact propagation above), so a Bernstein bound at FALSE_FAIL_RATE / (S + 1) per quantity
    # (union bound) gives a test whose false-fail rate is at most 1e-4, with no normal approximation.
    case = CASES_BY_NAME[name]
    target, base, proposal, _ = case
    betas, num_particles = STATISTICAL_LADDER, NUM_PARTICLES[name]
    first, second, bound = exact_moments(ais.step, case, betas)
    per_test = FALSE_FAIL_RATE / (target.num_states + 1)
    trace = ais.sample(
        CounterGenerator(11, 0),
        None,
        target.log_prob,
        base,
        proposal,
        len(betas),
        betas=betas,
        num_particles=num_particles,
    )
    weights = np.exp(trace.final_state.log_weight)
    z = first.sum()
    z_half_width = bernstein_half_width(second.sum() - z**2, bound, num_particles, per_test)
    assert abs(weights.mean() - z) < z_half_width, (weights.mean(), z, z_half_width)
    cells = target.state_index(trace.final_state.x)
    for s in range(target.num_states):
        estimate = np.sum(weights[cells == s]) / num_particles
        half_width = bernstein_half_width(second[s] - first[s] ** 2, bound, num_particles, per_test)
        assert abs(estimate - first[s]) < half_width, (s, estimate, first[s], half_width)
    # The estimates the sampler reports agree with the weights it returns.
    assert trace.infos.log_normalizer[-1] == pytest.approx(np.log(weights.mean()), abs=1e-12)
    assert trace.infos.effective_sample_size[-1] == pytest.approx(weights.sum() ** 2 / np.sum(weights**2), rel=1e-12)


def _caught(case, bug_step, num_particles):
    """Whether the sampled test's rejection of ``bug_step`` is certain up to 1e-4, from exact moments."""
    betas = STATISTICAL_LADDER
    per_test = FALSE_FAIL_RATE / (case[0].num_states + 1)
    first, second, bound = exact_moments(ais.step, case, betas)
    wrong_first, wrong_second, wrong_bound = exact_moments(bug_step, case, betas)
    # The S weighted frequencies, then Z-hat: means of the same per-particle variables.
    means, wrong_means = np.append(first, first.sum()), np.append(wrong_first, wrong_first.sum())
    variances = np.append(second, second.sum()) - means**2
    wrong_variances = np.maximum(np.append(wrong_second, wrong_second.sum()) - wrong_means**2, 0.0)
    widths = bernstein_half_width(variances, bound, num_particles, per_test)
    wrong_widths = bernstein_half_width(wrong_variances, wrong_bound, num_particles, FALSE_FAIL_RATE)
    # If |bias| > (the test's half-width) + (the bug's own deviation bound at 1e-4), the bug's estimate
    # lands outside the test's interval with probability >= 1 - 1e-4 for that quantity.
    return bool(np.any(np.abs(wrong_means - means) > widths + wrong_widths))


@pytest.mark.parametrize("bug", sorted(n for n, c in CASES.items() if c.algorithm == "annealed_importance"))
@pytest.mark.parametrize("name", sorted(NUM_PARTICLES))
def test_the_statistical_test_has_power_against_the_gallery(name, bug):
    # Exact, not sampled: at the sizes used above, each gallery bug fails the sampled test with
    # probability at least 1 - 1e-4 (the bias of one of its estimates beats both Bernstein bounds).
    assert _caught(CASES_BY_NAME[name], CASES[bug].step, NUM_PARTICLES[name])


def test_log_normalizer_helpers_are_exact_on_known_weights():
    log_weights = np.log([1.0, 2.0, 3.0, 0.0 + 1e-300])
    assert ais.log_normalizer_estimate(log_weights) == pytest.approx(np.log(6.0 / 4), abs=1e-12)
    assert ais.effective_sample_size(log_weights) == pytest.approx(36.0 / 14.0, rel=1e-12)
    weights = np.exp(log_weights)
    sample_variance = weights.var(ddof=1)
    assert ais.log_normalizer_variance(log_weights) == pytest.approx(
        sample_variance / (4 * weights.mean() ** 2), rel=1e-10
    )
    assert ais.effective_sample_size(np.full(3, -np.inf)) == 0.0
    np.testing.assert_allclose(ais.normalised_weights(log_weights), weights / weights.sum(), rtol=1e-12)


def test_a_rung_weights_before_it_moves_and_repeats_cost_nothing():
    target, base, proposal, _ = CASES_BY_NAME["categorical-small"]
    state = ais.init(np.array([0, 5]), target.log_prob, base)
    uniforms = np.array([0.99, TINY, 0.01, TINY])  # particle 0 proposes 5, particle 1 proposes 0; both accept
    new_state, info = ais.step(uniforms, state, target.log_prob, base, proposal, beta=0.5)
    expected = 0.5 * (target.log_prob(np.array([0, 5])) - base.log_prob(np.array([0, 5])))
    np.testing.assert_allclose(info.log_weight_increment, expected, rtol=1e-15)
    np.testing.assert_array_equal(new_state.x, [5, 0])
    np.testing.assert_allclose(new_state.log_prob, target.log_prob(np.array([5, 0])), rtol=1e-15)
    np.testing.assert_allclose(new_state.log_base_prob, base.log_prob(np.array([5, 0])), rtol=1e-15)
    again, info = ais.step(uniforms, new_state, target.log_prob, base, proposal, beta=0.5)
    np.testing.assert_array_equal(info.log_weight_increment, [0.0, 0.0])


def test_sample_is_init_plus_the_runner_and_x0_none_draws_from_base():
    target, base, proposal, _ = CASES_BY_NAME["categorical-small"]
    betas = ais.power_schedule(3)
    drawn = ais.sample(CounterGenerator(5, 2), None, target.log_prob, base, proposal, 3, betas=betas, num_particles=7)
    from textsampling.randomness import draw_uniforms

    rng = CounterGenerator(5, 2)
    x0 = ais.draw_particles(draw_uniforms(rng, 0, ais.num_base_uniforms(base, 7)), base, 7)
    given = ais.sample(rng, x0, target.log_prob, base, proposal, 3, first_step=1, betas=betas)
    np.testing.assert_array_equal(drawn.states.x, given.states.x)
    np.testing.assert_array_equal(drawn.final_state.log_weight, given.final_state.log_weight)
    assert drawn.states.x.shape == (3, 7) and drawn.infos.beta.tolist() == betas.tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"betas": np.array([0.5, 0.2])}, "non-decreasing"),
        ({"betas": np.array([0.5, 1.5])}, r"\[0, 1\]"),
        ({"betas": np.array([1.0])}, "one beta per step"),
    ],
)
def test_bad_ladders_are_refused_with_the_argument_named(kwargs, message):
    target, base, proposal, _ = CASES_BY_NAME["categorical-small"]
    with pytest.raises(ValueError, match=message):
        ais.sample(np.random.default_rng(0), np.array([0, 1]), target.log_prob, base, proposal, 2, **kwargs)


def test_particles_outside_the_base_and_a_missing_count_are_refused():
    target, _, proposal, _ = CASES_BY_NAME["categorical-small"]
    base = proposals.IndependentCategorical([0.0, 0.0, -np.inf, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="draws from base"):
        ais.init(np.array([2]), target.log_prob, base)
    with pytest.raises(ValueError, match="num_particles"):
        ais.sample(np.random.default_rng(0), None, target.log_prob, base, proposal, 1, betas=[1.0])


def _one_particle_branches(step_fn, target, base, proposal, cells, index, previous_beta, beta):
    """``[(probability, next index, exp(increment))]`` of one particle's rung from state ``index``."""
    states, log_rho = target.states, target.log_prob_all()
    log_base = np.asarray(base.log_prob(states), dtype=np.float64)
    state = ais.AISState(
        states[index][None], log_rho[index : index + 1], log_base[index : index + 1], np.zeros(1), previous_beta
    )
    branches = []
    for combination in itertools.product(*cells):
        for accept in (True, False):
            uniforms = np.array([u for u, _ in combination] + [TINY if accept else NEAR_ONE])
            new_state, info = step_fn(uniforms, state, target.log_prob, base, proposal, beta=beta)
            alpha = 0.0 if np.isnan(info.log_accept_prob[0]) else np.exp(info.log_accept_prob[0])
            probability = np.prod([p for _, p in combination]) * (alpha if accept else 1.0 - alpha)
            if probability > 0:
                branches.append((probability, target.state_index(new_state.x)[0], np.exp(new_state.log_weight[0])))
    return branches


@pytest.mark.parametrize("reset", ["log-mean-weight", "zero"])
def test_a_resampling_step_fits_between_rungs(reset):
    # The seam left for resampling (module docstring): after rung 1 of two particles, resample ancestors
    # multinomially (their exact law: a_n iid with probabilities W), set every log_weight to the log of
    # the mean weight, and continue. E[Z-hat] over the whole two-particle system, by enumeration, is Z
    # to 1e-12. Resetting the weights to 0 instead (a classic slip) is off: the test has teeth.
    target, base, proposal, cells = CASES_BY_NAME["categorical-small"]
    p0 = np.exp(np.asarray(base.log_prob(target.states), dtype=np.float64))
    first = [
        _one_particle_branches(ais.step, target, base, proposal, cells, i, 0.0, 0.5) for i in range(target.num_states)
    ]
    # Rung 2 from the resampled particles: E[exp(increment) | x] through the step (weights multiply).
    second, _, _ = rung_operators(ais.step, target, base, proposal, cells, 0.5, 1.0)
    expected_factor = second.sum(axis=1)
    expectation = 0.0
    for i, j in itertools.product(range(target.num_states), repeat=2):
        for (p_1, x_1, w_1), (p_2, x_2, w_2) in itertools.product(first[i], first[j]):
            probability = p0[i] * p0[j] * p_1 * p_2
            mean_weight = (w_1 + w_2) / 2
            carried = mean_weight if reset == "log-mean-weight" else 1.0
            normalised = np.array([w_1, w_2]) / (w_1 + w_2)
            for ancestors in itertools.product((0, 1), repeat=2):
                ancestor_probability = normalised[ancestors[0]] * normalised[ancestors[1]]
                particles = np.array([x_1, x_2])[list(ancestors)]
                z_hat = carried * np.mean(expected_factor[particles])
                expectation += probability * ancestor_probability * z_hat
    z = np.exp(target.log_normalizer())
    if reset == "log-mean-weight":
        assert abs(expectation - z) <= 1e-12 * z
    else:
        assert abs(expectation - z) > 1e-3 * z


@pytest.mark.parametrize("scheme", ["multinomial", "stratified", "systematic", "residual"])
def test_resample_is_the_resampling_step_proved_exact_above(scheme):
    # ais.resample is the construction test_a_resampling_step_fits_between_rungs proves unbiased: particles
    # (with their cached densities) by resampling.ancestors, every weight the log of the mean weight.
    from textsampling.reference import resampling

    target, base, proposal, _ = CASES_BY_NAME["categorical-small"]
    rng = np.random.default_rng(3)
    particles = 7
    state = ais.init(rng.integers(0, target.num_states, size=particles), target.log_prob, base)
    state, _ = ais.step(rng.uniform(size=ais.num_uniforms(proposal, particles)), state, target.log_prob, base,
                        proposal, beta=0.4)
    assert np.unique(state.log_weight).size > 1  # unequal weights: resampling has something to do
    uniforms = rng.uniform(size=resampling.num_uniforms(particles, scheme))
    parents = resampling.ancestors(uniforms, state.log_weight, scheme)
    resampled = ais.resample(uniforms, state, scheme)
    np.testing.assert_array_equal(resampled.x, state.x[parents])
    np.testing.assert_array_equal(resampled.log_prob, state.log_prob[parents])
    np.testing.assert_array_equal(resampled.log_base_prob, state.log_base_prob[parents])
    np.testing.assert_allclose(resampled.log_weight, ais.log_normalizer_estimate(state.log_weight), rtol=0, atol=0)
    assert resampled.beta == state.beta
    # the estimate of Z is unchanged by the reset: mean weight before = mean weight after
    assert ais.log_normalizer_estimate(resampled.log_weight) == pytest.approx(
        ais.log_normalizer_estimate(state.log_weight), abs=1e-12)


# ------------------------------------------------------------------------------------- Gibbs moves
# The same exactness with the move of each rung a Gibbs step on gamma_beta (ais.GibbsMove) instead of
# an MH step. The exact law of one rung is again built from the step's own uniforms-to-move map: the
# position uniform is enumerated cell by cell (floor(u L)), and the token uniform cell by cell of the
# inverse CDF of gamma_beta's conditional, computed here from the enumerated target (not by the package).
# Every cell is fed to the step at its midpoint and, for random scan, also just inside both of its ends
# (1e-9 of its width): the step must land on the cell's sequence each time, or the harness raises
# KernelMismatch. So the propagated kernel is the step's own (its cell boundaries agree to 1e-9), and
# m_K = rho to 1e-12 checks its weights and that its move leaves gamma_k invariant. A sweep is the same
# site update L times (gibbs.sweep): its cells are probed at their midpoints.


class KernelMismatch(AssertionError):
    """The step moved a probe somewhere else than the cell's sequence: it is not the kernel propagated."""


class ProductOfSites:
    """A normalised, non-uniform base on sequences: site ``i`` independent, token law softmax(``logits[i]``)."""

    def __init__(self, logits):
        logits = np.asarray(logits, dtype=np.float64)  # (L, V)
        self.log_probs = logits - logsumexp(logits, axis=1, keepdims=True)  # (L, V)
        self.num_uniforms = logits.shape[0]

    def sample(self, uniforms):
        uniforms = np.asarray(uniforms)  # (N, L)
        columns = [categorical_from_uniforms(uniforms[:, i], self.log_probs[i]) for i in range(self.num_uniforms)]
        return np.stack(columns, axis=1)  # (N, L)

    def log_prob(self, states):
        states = np.asarray(states)  # (N, L)
        return self.log_probs[np.arange(self.num_uniforms), states].sum(axis=1)  # (N,)


def _gibbs_cases():
    bigram = make_target("bigram-small")
    ising = PairwiseChain.ising(4, coupling=1.5)
    return {
        # target, base p0, number of tokens: a sequence target whose every sequence is enumerated
        "bigram-small, uniform base": (bigram, proposals.IndependentUniformSequences(3, 3), 3),
        "ising-4, product base": (ising, ProductOfSites(np.random.default_rng(4).normal(size=(4, 2))), 2),
    }


GIBBS_CASES = _gibbs_cases()
GIBBS_LADDERS = {"linear-4": ais.power_schedule(4), "repeated-rungs": np.array([0.2, 0.2, 0.7, 1.0, 1.0])}


def _test_log_gamma(log_base, log_rho, beta):
    """log gamma_beta of the enumerated states, written out here (0 * -inf kept out as the bridge does)."""
    if beta == 0.0:
        return log_base
    if beta == 1.0:
        return log_rho
    return (1.0 - beta) * log_base + beta * log_rho


def _site_cells(target, log_gamma, state, position, num_tokens):
    """``[(token, sequence index, lo, hi)]``: the inverse-CDF cells of gamma's conditional at ``position``."""
    candidates = np.repeat(state[None], num_tokens, axis=0)  # (V, L)
    candidates[:, position] = np.arange(num_tokens)
    indices = target.state_index(candidates)  # (V,)
    row = log_gamma[indices]
    if np.all(row == -np.inf):  # no mass at any candidate: the particle stays (its weight is 0)
        own = int(state[position])
        return [(own, int(indices[own]), 0.0, 1.0)]
    probabilities = np.exp(row - np.max(row))
    probabilities /= probabilities.sum()
    edges = np.concatenate([[0.0], np.cumsum(probabilities)])
    edges[-1] = 1.0
    return [(v, int(indices[v]), edges[v], edges[v + 1]) for v in range(num_tokens) if probabilities[v] > 0]


def _probes(lo, hi, edges: bool):
    middle = [(lo + hi) / 2]
    if not edges or hi - lo < 1e-6:
        return middle
    return middle + [lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo)]


def _branches(target, log_gamma, state_index, move):
    """``[(probability, probe uniforms, expected sequence index, is_midpoint)]`` of one particle's move."""
    state = target.states[state_index]
    length = state.shape[0]
    branches = []
    if move.scan == "random":
        for position in range(length):
            position_uniform = (position + 0.5) / length
            for _, j, lo, hi in _site_cells(target, log_gamma, state, position, move.num_tokens):
                for k, u in enumerate(_probes(lo, hi, edges=True)):
                    branches.append(((hi - lo) / length, [position_uniform, u], j, k == 0))
        return branches

    def sweep(sequence, position, probability, uniforms):
        if position == length:
            branches.append((probability, uniforms, int(target.state_index(sequence[None])[0]), True))
            return
        for token, _, lo, hi in _site_cells(target, log_gamma, sequence, position, move.num_tokens):
            updated = sequence.copy()
            updated[position] = token
            sweep(updated, position + 1, probability * (hi - lo), uniforms + [(lo + hi) / 2])

    sweep(state.copy(), 0, 1.0, [])
    return branches


def gibbs_rung_operators(step_fn, target, base, move, previous_beta, beta, moves_at="beta"):
    r"""``(A, A2, largest)`` of one rung with Gibbs moves, as :func:`rung_operators`; ``moves_at``: the beta
    whose conditionals the cells follow (``"beta"``, or ``"previous"`` for a step that moves at the last one)."""
    states, log_rho = target.states, target.log_prob_all()
    log_base = np.asarray(base.log_prob(states), dtype=np.float64)
    log_gamma = _test_log_gamma(log_base, log_rho, beta if moves_at == "beta" else previous_beta)
    num_states = target.num_states
    first, second, largest = np.zeros((num_states, num_states)), np.zeros((num_states, num_states)), 0.0
    for i in range(num_states):
        branches = _branches(target, log_gamma, i, move)
        count = len(branches)
        # Every probe of this state as one particle of a single rung (each particle's move is its own).
        state = ais.AISState(np.repeat(states[i][None], count, axis=0), np.full(count, log_rho[i]),
                             np.full(count, log_base[i]), np.zeros(count), previous_beta)
        uniforms = np.concatenate([u for _, u, _, _ in branches])
        new_state, _ = step_fn(uniforms, state, target.log_prob, base, move, beta=beta)
        landed = target.state_index(new_state.x)
        for n, (probability, _, j, is_midpoint) in enumerate(branches):
            if landed[n] != j:
                raise KernelMismatch(f"from state {i}, probe {n} landed on {landed[n]}, its cell is {j}")
            if not is_midpoint or probability == 0.0:
                continue
            factor = np.exp(new_state.log_weight[n])
            first[i, j] += probability * factor
            second[i, j] += probability * factor**2
            largest = max(largest, factor)
    return first, second, largest


def exact_gibbs_moments(step_fn, case, move, betas, moves_at="beta"):
    target, base, _ = case
    p0 = np.exp(np.asarray(base.log_prob(target.states), dtype=np.float64))
    assert abs(p0.sum() - 1.0) < 1e-12  # the base is normalised on the enumerated states
    first, second, previous = p0, p0.copy(), 0.0
    for beta in betas:
        a, a2, _ = gibbs_rung_operators(step_fn, target, base, move, previous, float(beta), moves_at)
        first, second, previous = first @ a, second @ a2, float(beta)
    return first, second


def _moves(case, scan):
    target, _, num_tokens = case
    return ais.GibbsMove(num_tokens, scan=scan, length=target.states.shape[1])


@pytest.mark.parametrize("ladder", sorted(GIBBS_LADDERS))
@pytest.mark.parametrize("scan", ["random", "systematic"])
@pytest.mark.parametrize("name", sorted(GIBBS_CASES))
def test_gibbs_moves_keep_the_weighted_law_exactly_rho(name, scan, ladder):
    # E[w 1{x_K = s}] = rho(s) for every s, hence E[Z-hat] = Z, with Gibbs moves on gamma_beta: exact.
    case = GIBBS_CASES[name]
    target = case[0]
    first, _ = exact_gibbs_moments(ais.step, case, _moves(case, scan), GIBBS_LADDERS[ladder])
    rho = np.exp(target.log_prob_all())
    np.testing.assert_allclose(first, rho, rtol=1e-12, atol=1e-15)
    assert abs(first.sum() - np.exp(target.log_normalizer())) <= 1e-12 * np.exp(target.log_normalizer())


@pytest.mark.parametrize("bug", sorted(n for n, c in CASES.items() if c.algorithm == "annealed_importance"))
@pytest.mark.parametrize("name", sorted(GIBBS_CASES))
def test_each_wrong_rung_with_gibbs_moves_misses_rho_exactly(name, bug):
    # Test of the test: whichever Gibbs kernel the gallery's wrong rung realises (at beta_k or at
    # beta_(k-1), checked probe by probe), its weighted law is off by far more than 1e-12.
    case = GIBBS_CASES[name]
    rho = np.exp(case[0].log_prob_all())
    realised = 0
    for moves_at in ("beta", "previous"):
        try:
            first, _ = exact_gibbs_moments(CASES[bug].step, case, _moves(case, "random"), GIBBS_LADDERS["linear-4"],
                                           moves_at)
        except KernelMismatch:
            continue
        realised += 1
        assert np.max(np.abs(first - rho) / rho.sum()) > 1e-3
    assert realised >= 1, "the wrong rung is neither kernel: the harness did not compute its law"


def test_a_gibbs_rung_is_the_gibbs_kernel_on_the_bridge_conditionals():
    # The move is gibbs.step itself, fed bridge_conditional_log_probs; the cached densities are the new
    # particles' own; the info says "proposal = the new sequence, always accepted".
    from textsampling.reference import gibbs

    target, base, num_tokens = GIBBS_CASES["ising-4, product base"]
    rng = np.random.default_rng(8)
    x0 = rng.integers(0, num_tokens, size=(5, 4))
    for scan in ("random", "systematic"):
        move = ais.GibbsMove(num_tokens, scan=scan, length=4)
        uniforms = rng.uniform(size=ais.num_uniforms(move, 5))
        state = ais.init(x0, target.log_prob, base)
        new_state, info = ais.step(uniforms, state, target.log_prob, base, move, beta=0.3)
        conditional = ais.bridge_conditional_log_probs(target.log_prob, base, 0.3, num_tokens)
        for n, row in enumerate(uniforms.reshape(5, -1)):
            expected, _ = gibbs.step(row, gibbs.GibbsState(x0[n]), conditional, scan=scan)
            np.testing.assert_array_equal(new_state.x[n], expected.x)
        np.testing.assert_allclose(new_state.log_prob, target.log_prob(new_state.x), rtol=1e-15)
        np.testing.assert_allclose(new_state.log_base_prob, base.log_prob(new_state.x), rtol=1e-15)
        np.testing.assert_array_equal(info.proposal, new_state.x)
        assert info.accepted.all() and np.all(info.log_accept_prob == 0.0)
        np.testing.assert_allclose(info.log_weight_increment, 0.3 * (target.log_prob(x0) - base.log_prob(x0)))
    assert not np.array_equal(new_state.x, x0)  # the particles moved


def test_bridge_conditionals_are_tempered_and_a_dead_particle_stays():
    # Uniform base: the conditional of gamma_beta is rho's raised to beta. Where every candidate has
    # gamma = 0 (here rho = 0 whenever x_0 = 0), the row says "stay": 0 at the particle's own token.
    base = proposals.IndependentUniformSequences(3, 2)

    def log_prob_fn(states):
        states = np.asarray(states)
        return np.where(states[:, 0] == 0, -np.inf, 0.5 * states[:, 1] - 1.0 * states[:, 0])

    conditional = ais.bridge_conditional_log_probs(log_prob_fn, base, 0.4, 3)
    rows = conditional(np.array([[1, 2], [0, 1]]), 1)
    uniform = -2 * np.log(3)
    np.testing.assert_allclose(rows[0], 0.6 * uniform + 0.4 * (0.5 * np.arange(3) - 1.0), rtol=1e-15)
    np.testing.assert_array_equal(rows[1], [-np.inf, 0.0, -np.inf])


def test_gibbs_moves_refuse_bad_settings_with_the_argument_named():
    with pytest.raises(ValueError, match="num_tokens"):
        ais.GibbsMove(0)
    with pytest.raises(ValueError, match="scan"):
        ais.GibbsMove(3, scan="backwards")
    with pytest.raises((ValueError, TypeError), match="length"):
        ais.GibbsMove(3, scan="systematic")
