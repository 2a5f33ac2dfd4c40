"""Rejection sampling: the count kept is Binomial(n, Z / M), the kept samples follow pi, the envelope
is enforced. Every statistical assertion uses a fixed seed and a false-fail rate of 1e-4."""

import numpy as np
import pytest
from scipy import stats

from textsampling.randomness import CounterGenerator
from textsampling.reference import proposals as pr
from textsampling.reference import rejection
from textsampling.targets import Categorical, FixedLengthBigram

FALSE_FAIL = 1e-4


def categorical_case():
    target = Categorical([0.3, -1.0, 2.0, 0.5, -0.2, 1.0, -np.inf, 0.1])
    return target, pr.IndependentCategorical([0.0, 0.5, 0.0, 0.0, -0.5, 0.0, 0.0, 0.3])


def bigram_case():
    rng = np.random.default_rng(6)
    target = FixedLengthBigram(rng.normal(size=3), rng.normal(size=(3, 4)), length=3)
    return target, pr.IndependentUniformSequences(3, 3)


def goodness_of_fit_pvalue(target, samples):
    probabilities = target.probabilities()
    counts = np.bincount(target.state_index(samples), minlength=target.num_states)
    support = probabilities > 0
    assert counts[~support].sum() == 0
    return stats.chisquare(counts[support], counts.sum() * probabilities[support]).pvalue


@pytest.mark.parametrize("case", [categorical_case, bigram_case], ids=["categorical", "bigram"])
@pytest.mark.parametrize("extra_log_envelope", [0.0, np.log(3.0)], ids=["tight", "loose"])
def test_acceptance_is_binomial_z_over_m_and_samples_follow_pi(case, extra_log_envelope):
    target, proposal = case()
    log_envelope = rejection.tightest_log_envelope(target, proposal) + extra_log_envelope
    result = rejection.sample(np.random.default_rng(30), target.log_prob, proposal, log_envelope, 20_000)
    rate = np.exp(target.log_normalizer() - log_envelope)  # Z / M, exact
    assert result.num_proposed == 20_000 and result.num_accepted == len(result.samples)
    assert result.acceptance_rate == result.num_accepted / 20_000
    # Exact two-sided binomial test of the number kept; false-fail rate 1e-4.
    assert stats.binomtest(result.num_accepted, 20_000, rate).pvalue > FALSE_FAIL
    # Pearson chi-square of the kept samples against pi; false-fail rate 1e-4.
    assert goodness_of_fit_pvalue(target, result.samples) > FALSE_FAIL


def test_a_wrong_acceptance_fails_the_same_check():
    # Test of the test: accepting with probability rho(x) / max rho (forgetting q) keeps samples from
    # a law proportional to pi * q, which the same chi-square rejects.
    target, proposal = categorical_case()
    uniforms = np.random.default_rng(30).random((20_000, 2))
    states = proposal.sample(uniforms[:, :1])
    wrong = np.log(uniforms[:, 1]) < target.log_prob(states) - target.log_prob_all().max()
    assert goodness_of_fit_pvalue(target, states[wrong]) < FALSE_FAIL


def test_step_decision_is_log_u_below_log_rho_minus_log_m_minus_log_q():
    target = Categorical([0.0, np.log(0.5)])
    proposal = pr.IndependentCategorical([0.0, 0.0])  # q = 1/2 each
    log_envelope = np.log(2.0)  # M q = (1, 1) >= rho = (1, 0.5)
    # Category 1 has acceptance probability 0.5: u just below and just above.
    uniforms = np.array([[0.75, 0.5 - 1e-12], [0.75, 0.5 + 1e-12], [0.25, 1 - 1e-12]])
    states, accepted, log_alpha = rejection.step(uniforms, target.log_prob, proposal, log_envelope)
    np.testing.assert_array_equal(states, [1, 1, 0])
    np.testing.assert_array_equal(accepted, [True, False, True])
    np.testing.assert_allclose(log_alpha, [np.log(0.5), np.log(0.5), 0.0], atol=1e-15)


def test_zero_density_states_are_never_kept_and_counter_generator_reproduces():
    target, proposal = categorical_case()
    log_envelope = rejection.tightest_log_envelope(target, proposal)
    first = rejection.sample(CounterGenerator(2), target.log_prob, proposal, log_envelope, 3000)
    second = rejection.sample(CounterGenerator(2), target.log_prob, proposal, log_envelope, 3000)
    np.testing.assert_array_equal(first.samples, second.samples)
    assert 6 not in first.samples  # rho(6) = 0


def test_violated_envelope_names_log_envelope_and_the_offending_value():
    target, proposal = categorical_case()
    tight = rejection.tightest_log_envelope(target, proposal)
    with pytest.raises(ValueError, match="log_envelope = .* is too small: .* log rho - log q = "):
        rejection.sample(np.random.default_rng(0), target.log_prob, proposal, tight - 0.1, 1000)
    # Rounding slack: the tight envelope itself is accepted.
    rejection.sample(np.random.default_rng(0), target.log_prob, proposal, tight, 1000)


@pytest.mark.parametrize(
    "log_envelope, error, message",
    [(np.inf, ValueError, "log_envelope must be finite"), (-np.inf, ValueError, "log_envelope must be finite"),
     (np.nan, ValueError, "log_envelope must be finite"), ("big", TypeError, "log_envelope must be a real number")],
)
def test_bad_envelope(log_envelope, error, message):
    target, proposal = categorical_case()
    with pytest.raises(error, match=message):
        rejection.sample(np.random.default_rng(0), target.log_prob, proposal, log_envelope, 10)


def test_bad_input():
    target, proposal = categorical_case()
    with pytest.raises(TypeError, match="rng"):
        rejection.sample(None, target.log_prob, proposal, 5.0, 10)
    with pytest.raises(ValueError, match="num_proposals"):
        rejection.sample(np.random.default_rng(0), target.log_prob, proposal, 5.0, 0)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(N, 2\)"):
        rejection.step([0.5, 0.5], target.log_prob, proposal, 5.0)
    with pytest.raises(ValueError, match="differ in shape"):
        rejection.log_accept_probability([0.0, 1.0], [0.0], 5.0)
    with pytest.raises(ValueError, match="log_prob_values must be finite or -inf"):
        rejection.log_accept_probability([np.nan], [0.0], 5.0)
    with pytest.raises(ValueError, match="no envelope exists"):
        rejection.tightest_log_envelope(Categorical([0.0, 0.0]), pr.IndependentCategorical([0.0, -np.inf]))


@pytest.mark.parametrize(
    "log_alpha",
    [lambda states: np.where(states % 2 == 0, 0.0, -np.inf), lambda states: -np.logaddexp(0.0, -(states - 3.5))],
    ids=["hard-filter", "soft"],
)
def test_a_general_acceptance_alpha_keeps_q_alpha_over_z_alpha(log_alpha):
    # Part 1's general rule: keep x ~ q with probability alpha(x) in [0, 1]; the survivors follow
    # q alpha / Z_alpha and Z_alpha = sum q alpha of the proposals survive. It is the envelope rule for
    # rho = q alpha with M = 1 (the envelope holds since alpha <= 1), which is how the chapter runs it.
    _, proposal = categorical_case()
    states = np.arange(proposal.num_categories)

    def log_rho(x):
        return proposal.log_prob(x) + log_alpha(x)

    law = Categorical(log_rho(states))  # q alpha / Z_alpha, enumerated
    result = rejection.sample(np.random.default_rng(31), log_rho, proposal, 0.0, 20_000)
    rate = np.exp(law.log_normalizer())  # Z_alpha = sum_x q(x) alpha(x), exact (q is normalised)
    # The accept probability step uses is alpha itself.
    np.testing.assert_allclose(
        np.exp(rejection.log_accept_probability(log_rho(states), proposal.log_prob(states), 0.0)),
        np.exp(log_alpha(states)), rtol=1e-13, atol=0.0,
    )
    # Exact two-sided binomial test of the number kept; false-fail rate 1e-4.
    assert stats.binomtest(result.num_accepted, 20_000, rate).pvalue > FALSE_FAIL
    # Pearson chi-square of the survivors against q alpha / Z_alpha; false-fail rate 1e-4.
    assert goodness_of_fit_pvalue(law, result.samples) > FALSE_FAIL
    # ... and against q itself, the law they would follow if alpha were ignored: rejected.
    assert goodness_of_fit_pvalue(Categorical(proposal.log_probs), result.samples) < FALSE_FAIL
