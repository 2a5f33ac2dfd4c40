"""Black-box checks of the batched twins with textsampling.testing: one step from exact draws keeps the law.

Each check has false-fail rate 1e-4 (the harness's default) and a fixed seed. The sample sizes for the
tests of the test come from ``required_samples_against`` with the *exact* wrong law of the flawed kernel
(pi P from its transition matrix), for a stated power of 0.999.
"""

import numpy as np
import pytest
import torch

from textsampling.lm.oracle import BigramOracle, MaskSensitiveOracle
from textsampling.reference import cgmh
from textsampling.targets import BigramLM
from textsampling.targets.base import DiscreteTarget
from textsampling.testing.black_box import one_step_invariance_test
from textsampling.testing.statistics import required_samples_against
from textsampling.torch import cgmh as cgmh_twin
from textsampling.torch import mlm_gibbs as mlm_gibbs_twin

KEYWORDS = [2, 0]


def _oracle(seed=1, vocab_size=3, max_length=4):
    rng = np.random.default_rng(seed)
    bigram = BigramLM(rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length)
    return BigramOracle(bigram)


def _uniforms(rng, num_states, count):
    uniforms = rng.random((num_states, count))
    return torch.as_tensor(np.where(uniforms > 0, uniforms, np.finfo(np.float64).tiny))


class Sentences(DiscreteTarget):
    """CGMH's state space as a DiscreteTarget: every sentence that contains the keywords, rho chi / Z."""

    def __init__(self, config):
        self.config = config
        self.state_shape = (config.max_length,)

    def enumerate_states(self):
        return cgmh.enumerate_sentences(self.config)

    def log_prob(self, states):
        return cgmh.log_target(self.config, states) / self.config.temperature


def _cgmh_step_fn(config):
    def step_fn(rng, states):
        state = cgmh_twin.init(torch.as_tensor(states), config)
        new_state, _ = cgmh_twin.step(_uniforms(rng, states.shape[0], cgmh.NUM_UNIFORMS), state, config)
        return new_state.x.numpy()

    return step_fn


def _config(**kwargs):
    return cgmh.make_config(
        _oracle(), KEYWORDS, num_candidates=2, gamma=0.8, move_probabilities=(0.3, 0.45, 0.25), **kwargs
    )


def test_cgmh_twin_passes_one_step_invariance():
    config = _config()
    result = one_step_invariance_test(
        _cgmh_step_fn(config), Sentences(config), np.random.default_rng(0), 8000, batched=True
    )
    assert result.passed, result


@pytest.mark.parametrize("mistake", [{"position_ratio": False}, {"candidate_set": "biased"}])
def test_published_cgmh_mistakes_fail_one_step_invariance(mistake):
    config = _config(**mistake)
    target = Sentences(config)
    # Size the test from the flawed kernel's exact one-step law: power >= 0.999 against it.
    pi = target.probabilities()
    wrong_law = pi @ cgmh.transition_matrix(config, target.enumerate_states())
    num_samples = required_samples_against(wrong_law, pi, power=0.999)
    result = one_step_invariance_test(
        _cgmh_step_fn(config), target, np.random.default_rng(1), num_samples, batched=True
    )
    assert not result.passed, result


@pytest.mark.parametrize("temperature, should_pass", [(1.0, True), (0.5, False)])
def test_mlm_gibbs_twin_one_step_invariance_and_tempered_failure(temperature, should_pass):
    """Variable-length bigram joint (lengths 1..4); a tempered conditional changes the target and fails.

    The model peeks at x_i unless it is [MASK] (MaskSensitiveOracle): passing also says the twin masks.
    """
    oracle = MaskSensitiveOracle(_oracle().bigram)
    target = oracle.bigram

    def step_fn(rng, states):
        state = mlm_gibbs_twin.MLMGibbsState(torch.as_tensor(states))
        uniforms = _uniforms(rng, states.shape[0], 2)
        new_state, _ = mlm_gibbs_twin.step(uniforms, state, oracle, scan="random", temperature=temperature)
        return new_state.x.numpy()

    num_samples = 6000
    if not should_pass:  # the stated power 0.999 against the tempered kernel's exact one-step law
        from textsampling.reference import mlm_gibbs

        matrix = mlm_gibbs.transition_matrix(oracle, target.states, "random", temperature)
        assert required_samples_against(target.probabilities() @ matrix, target.probabilities()) <= num_samples
    result = one_step_invariance_test(step_fn, target, np.random.default_rng(2), num_samples, batched=True)
    assert result.passed == should_pass, result
