"""The faulty samplers are wrong exactly where they claim to be: each bug vanishes when its trigger is
removed (a symmetric proposal, T = 1, independent positions, a valid envelope), and its exact kernel has
the stationary law the bug predicts. All checks here are exact (no randomness)."""

import numpy as np
import pytest

from textsampling import markov, testing
from textsampling.reference import gibbs, metropolis_hastings, rejection
from textsampling.reference.proposals import (
    IndependentCategorical,
    RingStepProposal,
    UniformCategoricalProposal,
)
from textsampling.targets import Categorical, PairwiseChain
from textsampling.testing import faulty
from textsampling.testing.cases import SamplerCase

CATEGORICAL = Categorical([0.5, -1.0, 1.5, 0.0, 1.0])
CHAIN = PairwiseChain(
    np.array([[0.2, -0.5, 0.1], [0.0, 0.4, -0.3], [0.3, 0.0, -0.2]]),
    np.array([[0.8, -0.3, 0.0], [-0.3, 0.5, 0.2], [0.0, 0.2, -0.4]]),
)
EXACT = 1e-12


def all_faulty_samplers():
    return [
        faulty.mh_without_hastings_correction(CATEGORICAL, RingStepProposal(5, 0.8)),
        faulty.mh_with_wrong_sign(CATEGORICAL, UniformCategoricalProposal(5)),
        faulty.gibbs_with_tempered_conditional(CHAIN, 2.0),
        faulty.gibbs_with_stale_conditionals(CHAIN),
        faulty.systematic_scan_skipping_last_position(CHAIN),
        faulty.mh_that_retries_rejections(CATEGORICAL, UniformCategoricalProposal(5)),
        faulty.rejection_with_clipped_envelope(CATEGORICAL, IndependentCategorical(np.zeros(5)), 0.0),
    ]


@pytest.mark.parametrize("sampler", all_faulty_samplers(), ids=lambda f: f.name)
def test_each_faulty_sampler_describes_its_bug_and_has_a_proper_kernel(sampler):
    assert sampler.description and "\n" not in sampler.description
    assert str(sampler).startswith(sampler.name + ": ")
    assert sampler.detected_by in faulty.DETECTIONS
    markov.check_transition_matrix(sampler.transition_matrix)
    pi = sampler.target.probabilities()
    # Wrong in the way it claims: one step moves pi, unless the bug is a lack of convergence.
    moves_pi = testing.one_step_tv(sampler.transition_matrix, pi) > 1e-3
    assert moves_pi == (sampler.detected_by == "one_step_invariance")


def test_missing_hastings_term_is_harmless_for_a_symmetric_proposal_only():
    symmetric = UniformCategoricalProposal(5)
    np.testing.assert_allclose(
        faulty.mh_without_hastings_correction(CATEGORICAL, symmetric).transition_matrix,
        metropolis_hastings.transition_matrix(CATEGORICAL, symmetric),
        atol=EXACT,
    )
    asymmetric = faulty.mh_without_hastings_correction(CATEGORICAL, RingStepProposal(5, 0.8))
    assert not testing.check_stationary(asymmetric.transition_matrix, CATEGORICAL.probabilities()).passed


def test_wrong_sign_samples_the_reversed_target_exactly():
    sampler = faulty.mh_with_wrong_sign(CATEGORICAL, UniformCategoricalProposal(5), temperature=0.5)
    reversed_target = Categorical(-CATEGORICAL.logits / 0.5)
    testing.assert_detailed_balance(sampler.transition_matrix, reversed_target.probabilities())
    with pytest.raises(ValueError, match="target must give every state positive probability"):
        faulty.mh_with_wrong_sign(Categorical([0.0, -np.inf, 1.0]), UniformCategoricalProposal(3))


def test_tempered_conditional_is_exact_at_temperature_one_and_samples_the_tempered_joint_otherwise():
    np.testing.assert_allclose(
        faulty.gibbs_with_tempered_conditional(CHAIN, 1.0).transition_matrix,
        gibbs.transition_matrix(CHAIN, "random"),
        atol=EXACT,
    )
    # For a pairwise chain, p(x_i | x_-i)^(1/T) renormalised is the conditional of rho^(1/T).
    tempered = PairwiseChain(CHAIN.unary / 2.0, CHAIN.coupling / 2.0)
    testing.assert_detailed_balance(
        faulty.gibbs_with_tempered_conditional(CHAIN, 2.0).transition_matrix, tempered.probabilities()
    )


def test_stale_conditionals_are_harmless_only_when_positions_are_independent():
    independent = PairwiseChain(CHAIN.unary, np.zeros((3, 3)))
    testing.assert_stationary(
        faulty.gibbs_with_stale_conditionals(independent).transition_matrix, independent.probabilities()
    )
    stale = faulty.gibbs_with_stale_conditionals(CHAIN).transition_matrix
    assert not testing.check_stationary(stale, CHAIN.probabilities()).passed


def test_skipping_scan_keeps_pi_but_is_not_irreducible():
    matrix = faulty.systematic_scan_skipping_last_position(CHAIN).transition_matrix
    testing.assert_stationary(matrix, CHAIN.probabilities())
    assert not markov.is_irreducible(matrix)
    assert markov.is_irreducible(gibbs.transition_matrix(CHAIN, "systematic"))


def test_retrying_rejections_samples_pi_times_the_move_probability():
    proposal = UniformCategoricalProposal(5)
    correct = metropolis_hastings.transition_matrix(CATEGORICAL, proposal)
    wrong = faulty.mh_that_retries_rejections(CATEGORICAL, proposal).transition_matrix
    predicted = CATEGORICAL.probabilities() * (1.0 - np.diag(correct))
    np.testing.assert_allclose(markov.stationary_distribution(wrong), predicted / predicted.sum(), atol=1e-10)


def test_clipping_is_harmless_when_the_envelope_holds():
    proposal = IndependentCategorical(np.zeros(5))
    valid = rejection.tightest_log_envelope(CATEGORICAL, proposal)
    exact = faulty.rejection_with_clipped_envelope(CATEGORICAL, proposal, valid).transition_matrix
    np.testing.assert_allclose(exact[0], CATEGORICAL.probabilities(), atol=EXACT)
    clipped = faulty.rejection_with_clipped_envelope(CATEGORICAL, proposal, valid - 1.0).transition_matrix
    assert testing.one_step_tv(clipped, CATEGORICAL.probabilities()) > 0.05


def test_faulty_samplers_and_the_gallery_share_one_record_type():
    # One record for a sampler under test: what faulty.py returns is what the gallery holds, and the
    # exact kernel comes out the same way from both (an array here, built on the named target there).
    from textsampling import gallery

    assert all(type(sampler) is SamplerCase for sampler in all_faulty_samplers())
    assert all(type(case) is SamplerCase for case in [*gallery.CASES.values(), *gallery.CORRECT.values()])
    assert gallery.SamplerCase is SamplerCase
    sampler = faulty.mh_with_wrong_sign(CATEGORICAL, UniformCategoricalProposal(5))
    assert sampler.kind is None and sampler.step_fn is sampler.step
    np.testing.assert_array_equal(sampler.kernel(), sampler.transition_matrix)
    # A gallery case over a faulty sampler keeps its description and how it is caught.
    case = gallery.CASES["gibbs-skip-position"]
    assert case.detected_by == "long_run" and case.kernel().shape == (27, 27)
    with pytest.raises(ValueError, match="detected_by must be one of"):
        SamplerCase("x", None, CATEGORICAL, "bug", sampler.step, detected_by="eventually")
