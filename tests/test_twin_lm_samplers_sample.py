"""The language-model twins' ``sample`` == the references', chain by chain.

Twin chain ``c`` runs with ``CounterGenerator(seed, chain_index=arange(B))``; the reference chain with
``CounterGenerator(seed, c)``: step ``t`` of chain ``c`` receives ``counter_uniforms(seed, c, first_step + t, k)``
in both, so every state and accept decision must agree exactly and log-probabilities/energies to 1e-12
(float64). The target is the bigram oracle, on which everything is enumerable. Also: a KeyboardInterrupt keeps
the completed steps, and bad input raises an error naming the argument.
"""

import lm_chains
import numpy as np
import pytest
import torch

from textsampling.randomness import CounterGenerator
from textsampling.reference import cgmh, mlm_gibbs, sentence_annealing
from textsampling.reference import mlm_metropolis_hastings as mlm_mh
from textsampling.targets import PAD
from textsampling.torch import cgmh as cgmh_twin
from textsampling.torch import mlm_gibbs as mlm_gibbs_twin
from textsampling.torch import mlm_metropolis_hastings as mlm_mh_twin
from textsampling.torch import sentence_annealing as sentence_annealing_twin
from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator

SEED = 7
NUM_CHAINS, NUM_STEPS, FIRST_STEP = 5, 30, 4


def _oracle(seed=2, vocab_size=5, max_length=5):
    return lm_chains.oracle(seed, vocab_size, max_length)


def _starts(oracle, seed=0):
    return lm_chains.starts(oracle, NUM_CHAINS, seed)


def _keyword_starts(config, seed=0):
    return lm_chains.keyword_starts(config, NUM_CHAINS, seed)


def _twin_rng(num_chains=NUM_CHAINS):
    return TorchCounterGenerator(SEED, torch.arange(num_chains))


def _reference_rng(chain):
    return CounterGenerator(SEED, chain)


class _InterruptAfter:
    """``model`` whose ``method`` raises KeyboardInterrupt on call ``num_calls + 1`` (as a user's Ctrl-C)."""

    def __init__(self, model, method, num_calls):
        self._model, self._method, self._calls_left = model, method, num_calls

    def __getattr__(self, name):
        value = getattr(self._model, name)
        if name != self._method:
            return value

        def counted(*args, **kwargs):
            if self._calls_left == 0:
                raise KeyboardInterrupt
            self._calls_left -= 1
            return value(*args, **kwargs)

        return counted


def test_num_uniforms_is_a_function_on_both_sides():
    assert mlm_mh.num_uniforms() == mlm_mh_twin.num_uniforms() == mlm_mh.NUM_UNIFORMS == 3
    assert cgmh.num_uniforms() == cgmh_twin.num_uniforms() == 4
    assert sentence_annealing.num_uniforms() == sentence_annealing_twin.num_uniforms() == 4
    for scan, width in [("random", 5), ("systematic", 5), ("systematic", 3)]:
        assert mlm_gibbs_twin.num_uniforms(scan, width) == mlm_gibbs.num_uniforms(scan, width)


# ----------------------------------------------------------------------------- MLM Gibbs
def _all_mask_starts(oracle):
    """All-[MASK] starts, chain c's length drawn as the reference draws it for CounterGenerator(SEED, c)."""
    twin = mlm_gibbs_twin.draw_all_mask_starts(_twin_rng(), oracle)
    reference = np.array([mlm_gibbs.draw_all_mask_start(_reference_rng(c), oracle) for c in range(NUM_CHAINS)])
    np.testing.assert_array_equal(twin.numpy(), reference)
    return reference


@pytest.mark.parametrize("start", ["all_mask", "given"])
@pytest.mark.parametrize(
    "scan, temperature, top_k", [("random", 1.0, None), ("systematic", 1.0, None), ("random", 0.7, 3)]
)
def test_mlm_gibbs_sample_twin_equals_reference(scan, temperature, top_k, start):
    oracle = _oracle()
    starts = _starts(oracle) if start == "given" else _all_mask_starts(oracle)
    twin = mlm_gibbs_twin.sample(
        _twin_rng(), torch.as_tensor(starts), oracle, NUM_STEPS,
        first_step=FIRST_STEP, scan=scan, temperature=temperature, top_k=top_k,
    )
    assert twin.states.x.shape == (NUM_CHAINS, NUM_STEPS, oracle.max_length) and not twin.interrupted
    assert bool(twin.infos.changes_target.all()) == (temperature != 1.0 or top_k is not None)
    for c in range(NUM_CHAINS):
        reference = mlm_gibbs.sample(_reference_rng(c), starts[c], oracle, NUM_STEPS,
                                     first_step=FIRST_STEP, scan=scan, temperature=temperature, top_k=top_k)
        np.testing.assert_array_equal(twin.states.x[c].numpy(), reference.states.x)
        np.testing.assert_array_equal(twin.infos.position[c].numpy(), reference.infos.position)
        np.testing.assert_array_equal(twin.infos.token[c].numpy(), reference.infos.token)
        np.testing.assert_array_equal(twin.final_state.x[c].numpy(), reference.final_state.x)
    # The chains moved: the comparison is not between two frozen starts.
    assert (twin.states.x[:, -1] != twin.states.x[:, 0]).any()


def test_mlm_gibbs_sample_keeps_the_completed_steps_on_keyboard_interrupt():
    oracle = _oracle()
    x0 = torch.as_tensor(_all_mask_starts(oracle))
    full = mlm_gibbs_twin.sample(_twin_rng(), x0, oracle, NUM_STEPS)
    # A random-scan step asks the model once: the call of step 7 (0-based) is interrupted.
    cut = mlm_gibbs_twin.sample(_twin_rng(), x0, _InterruptAfter(oracle, "masked_log_probs_torch", 7), NUM_STEPS)
    assert cut.interrupted and not full.interrupted
    assert cut.states.x.shape == (NUM_CHAINS, 7, oracle.max_length) and cut.infos.position.shape == (NUM_CHAINS, 7)
    np.testing.assert_array_equal(cut.states.x.numpy(), full.states.x[:, :7].numpy())
    np.testing.assert_array_equal(cut.infos.position.numpy(), full.infos.position[:, :7].numpy())
    np.testing.assert_array_equal(cut.final_state.x.numpy(), full.states.x[:, 6].numpy())


def test_mlm_gibbs_sample_with_a_torch_generator_is_reproducible():
    """A torch.Generator (batch-dependent stream) serves the same runner: same seed, same trace."""
    oracle = _oracle()
    traces = []
    for _ in range(2):
        rng = torch.Generator().manual_seed(5)
        x0 = mlm_gibbs_twin.draw_all_mask_starts(rng, oracle, num_chains=3)
        traces.append(mlm_gibbs_twin.sample(rng, x0, oracle, NUM_STEPS, scan="systematic"))
    first, second = traces
    assert first.states.x.shape == (3, NUM_STEPS, oracle.max_length)
    np.testing.assert_array_equal(first.states.x.numpy(), second.states.x.numpy())
    assert (first.states.x != oracle.mask_token_id).all()  # a sweep fills every masked position


def test_mlm_gibbs_sample_refuses_bad_input():
    oracle = _oracle()
    x0 = torch.as_tensor(_starts(oracle))
    with pytest.raises(ValueError, match="num_steps"):
        mlm_gibbs_twin.sample(_twin_rng(), x0, oracle, -1)
    with pytest.raises(ValueError, match="first_step"):
        mlm_gibbs_twin.sample(_twin_rng(), x0, oracle, 3, first_step=-2)
    with pytest.raises(TypeError, match="rng must be"):
        mlm_gibbs_twin.sample(np.random.default_rng(0), x0, oracle, 3)
    with pytest.raises(ValueError, match="rng serves 3 chains"):
        mlm_gibbs_twin.sample(_twin_rng(3), x0, oracle, 3)
    with pytest.raises(ValueError, match="num_chains is required"):
        mlm_gibbs_twin.draw_all_mask_starts(torch.Generator().manual_seed(0), oracle)
    with pytest.raises(ValueError, match="rng serves 5 chains .* num_chains has 2 rows"):
        mlm_gibbs_twin.draw_all_mask_starts(_twin_rng(), oracle, num_chains=2)
    with pytest.raises(ValueError, match="scan"):
        mlm_gibbs_twin.sample(_twin_rng(), x0, oracle, 3, scan="diagonal")
    gap = x0.clone()
    gap[1, :3] = torch.tensor([1, PAD, 2])
    with pytest.raises(ValueError, match=r"x0\[1\] must hold tokens followed only by PAD"):
        mlm_gibbs_twin.sample(_twin_rng(), gap, oracle, 3)
    with pytest.raises(TypeError, match="x0 must hold integers"):
        mlm_gibbs_twin.sample(_twin_rng(), x0.to(torch.float64), oracle, 3)
    with pytest.raises(TypeError, match="masked language model"):
        mlm_gibbs_twin.sample(_twin_rng(), x0, object(), 3)


# ----------------------------------------------------------------------------- MLM-MH
@pytest.mark.parametrize("kind", ["pll", "raw_logit"])
def test_mlm_mh_sample_twin_equals_reference(kind):
    oracle = _oracle()
    starts = _starts(oracle)
    twin = mlm_mh_twin.sample(_twin_rng(), torch.as_tensor(starts), oracle, NUM_STEPS, first_step=FIRST_STEP,
                              energy_kind=kind)
    assert twin.states.x.shape == (NUM_CHAINS, NUM_STEPS, oracle.max_length) and not twin.interrupted
    for c in range(NUM_CHAINS):
        reference = mlm_mh.sample(_reference_rng(c), starts[c], oracle, NUM_STEPS, first_step=FIRST_STEP,
                                  energy_kind=kind)
        np.testing.assert_array_equal(twin.states.x[c].numpy(), reference.states.x)
        np.testing.assert_array_equal(twin.infos.accepted[c].numpy(), reference.infos.accepted)
        np.testing.assert_array_equal(twin.infos.position[c].numpy(), reference.infos.position)
        np.testing.assert_array_equal(twin.infos.proposal[c].numpy(), reference.infos.proposal)
        np.testing.assert_allclose(twin.states.log_prob[c].numpy(), reference.states.log_prob, rtol=0, atol=1e-12)
        np.testing.assert_allclose(twin.infos.log_accept_prob[c].numpy(), reference.infos.log_accept_prob,
                                   rtol=0, atol=1e-12)
        np.testing.assert_array_equal(twin.final_state.x[c].numpy(), reference.final_state.x)
        assert abs(float(twin.final_state.log_prob[c]) - reference.final_state.log_prob) <= 1e-12
    assert 0 < twin.infos.accepted.double().mean() < 1  # both decisions were compared


def test_mlm_mh_sample_keeps_the_completed_steps_on_keyboard_interrupt():
    oracle = _oracle()
    x0 = torch.as_tensor(_starts(oracle))
    full = mlm_mh_twin.sample(_twin_rng(), x0, oracle, NUM_STEPS)
    # init asks the model once (the energy), each step twice (proposal, energy): step 5 is interrupted.
    model = _InterruptAfter(oracle, "masked_log_probs_torch", 1 + 2 * 5)
    cut = mlm_mh_twin.sample(_twin_rng(), x0, model, NUM_STEPS)
    assert cut.interrupted and cut.states.x.shape == (NUM_CHAINS, 5, oracle.max_length)
    np.testing.assert_array_equal(cut.states.x.numpy(), full.states.x[:, :5].numpy())
    np.testing.assert_array_equal(cut.infos.accepted.numpy(), full.infos.accepted[:, :5].numpy())
    np.testing.assert_array_equal(cut.states.log_prob.numpy(), full.states.log_prob[:, :5].numpy())
    np.testing.assert_array_equal(cut.final_state.x.numpy(), full.states.x[:, 4].numpy())


def test_mlm_mh_sample_refuses_bad_input():
    oracle = _oracle()
    x0 = torch.as_tensor(_starts(oracle))
    with pytest.raises(ValueError, match="num_steps"):
        mlm_mh_twin.sample(_twin_rng(), x0, oracle, -3)
    with pytest.raises(TypeError, match="rng must be"):
        mlm_mh_twin.sample(CounterGenerator(SEED, 0), x0, oracle, 3)  # the NumPy generator, not the twin's
    with pytest.raises(ValueError, match="rng serves 2 chains"):
        mlm_mh_twin.sample(_twin_rng(2), x0, oracle, 3)
    with pytest.raises(ValueError, match="energy_kind must be one of"):
        mlm_mh_twin.sample(_twin_rng(), x0, oracle, 3, energy_kind="entropy")
    with pytest.raises(ValueError, match=r"x0 must have shape \(B, L\)"):
        mlm_mh_twin.sample(_twin_rng(), x0[0], oracle, 3)


# ----------------------------------------------------------------------------- CGMH
def _config(model, **variant):
    return cgmh.make_config(model, variant.pop("keywords", [2]), num_candidates=3, gamma=0.8,
                            move_probabilities=(0.4, 0.35, 0.25), **variant)


@pytest.mark.parametrize("variant", [{}, {"keywords": [[1, 4]], "temperature": 0.5}, {"keyword_rule": "position"}],
                         ids=str)
def test_cgmh_sample_twin_equals_reference(variant):
    config = _config(_oracle(), **variant)
    if config.keyword_rule == "position":
        start = cgmh.keyword_state(config)
        starts = np.repeat(start.x[None], NUM_CHAINS, axis=0)
        placements = [start.protected] * NUM_CHAINS
        twin_placements = torch.as_tensor(np.array(placements))
    else:
        starts = _keyword_starts(config)
        placements, twin_placements = [None] * NUM_CHAINS, None
    num_steps = 3 * NUM_STEPS
    twin = cgmh_twin.sample(_twin_rng(), torch.as_tensor(starts), config, num_steps, first_step=FIRST_STEP,
                            protected=twin_placements)
    assert twin.states.x.shape == (NUM_CHAINS, num_steps, config.max_length) and not twin.interrupted
    for c in range(NUM_CHAINS):
        reference = cgmh.sample(_reference_rng(c), starts[c], config, num_steps, first_step=FIRST_STEP,
                                protected=placements[c])
        np.testing.assert_array_equal(twin.states.x[c].numpy(), reference.states.x)
        np.testing.assert_array_equal(twin.states.protected[c].numpy(), reference.states.protected)
        np.testing.assert_array_equal(twin.infos.accepted[c].numpy(), reference.infos.accepted)
        assert [cgmh.MOVES[int(m)] for m in twin.infos.move[c]] == list(reference.infos.move)
        np.testing.assert_allclose(twin.states.log_prob[c].numpy(), reference.states.log_prob, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(twin.final_state.x[c].numpy(), reference.final_state.x)
        assert abs(float(twin.final_state.log_prob[c]) - reference.final_state.log_prob) <= 1e-12
    assert 0 < twin.infos.accepted.double().mean() < 1  # both decisions were compared


def test_cgmh_sample_keeps_the_completed_steps_on_keyboard_interrupt():
    oracle = _oracle()
    config = _config(oracle)
    starts = torch.as_tensor(_keyword_starts(config))
    full = cgmh_twin.sample(_twin_rng(), starts, config, NUM_STEPS)
    # A step asks for the next-token row once (init never does): step 6 is interrupted.
    cut_config = config._replace(model=_InterruptAfter(oracle, "next_token_log_probs_torch", 6))
    cut = cgmh_twin.sample(_twin_rng(), starts, cut_config, NUM_STEPS)
    assert cut.interrupted and cut.states.x.shape == (NUM_CHAINS, 6, config.max_length)
    for name in ("x", "protected", "log_prob"):
        np.testing.assert_array_equal(getattr(cut.states, name).numpy(), getattr(full.states, name)[:, :6].numpy())
    for name in ("accepted", "move"):
        np.testing.assert_array_equal(getattr(cut.infos, name).numpy(), getattr(full.infos, name)[:, :6].numpy())
    np.testing.assert_array_equal(cut.final_state.x.numpy(), full.states.x[:, 5].numpy())


def test_cgmh_sample_refuses_bad_input():
    config = _config(_oracle())
    starts = _keyword_starts(config)
    x0 = torch.as_tensor(starts)
    with pytest.raises(ValueError, match="num_steps"):
        cgmh_twin.sample(_twin_rng(), x0, config, -1)
    with pytest.raises(TypeError, match="rng must be"):
        cgmh_twin.sample(np.random.default_rng(0), x0, config, 3)
    with pytest.raises(ValueError, match="rng serves 4 chains"):
        cgmh_twin.sample(_twin_rng(4), x0, config, 3)
    with pytest.raises(TypeError, match="not a state"):
        cgmh_twin.sample(_twin_rng(), cgmh_twin.init(x0, config), config, 3)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        cgmh_twin.sample(_twin_rng(), starts, config, 3)
    with pytest.raises(TypeError, match="config must be a CGMHConfig"):
        cgmh_twin.sample(_twin_rng(), x0, {"max_length": 5}, 3)


# ----------------------------------------------------------------------------- sentence annealing
def test_sentence_annealing_sample_twin_equals_reference():
    config = cgmh.make_config(_oracle(), [2], num_candidates=4, gamma=0.5)
    starts = _keyword_starts(config, seed=1)
    num_steps = 2 * NUM_STEPS
    temperatures = sentence_annealing.geometric_schedule(2.0, 0.05, num_steps)
    twin = sentence_annealing_twin.sample(_twin_rng(), torch.as_tensor(starts), config, num_steps,
                                          first_step=FIRST_STEP, temperatures=temperatures)
    assert twin.states.x.shape == (NUM_CHAINS, num_steps, config.max_length) and not twin.interrupted
    np.testing.assert_array_equal(twin.infos.temperature.numpy(), np.repeat(temperatures[None], NUM_CHAINS, axis=0))
    twin_start = cgmh_twin.init(torch.as_tensor(starts), config)
    twin_best = sentence_annealing_twin.best(twin, twin_start)
    for c in range(NUM_CHAINS):
        reference = sentence_annealing.sample(_reference_rng(c), starts[c], config, num_steps,
                                              first_step=FIRST_STEP, temperatures=temperatures)
        reference_best = sentence_annealing.best(reference, cgmh.init(starts[c], config))
        np.testing.assert_array_equal(twin.states.x[c].numpy(), reference.states.x)
        np.testing.assert_array_equal(twin.infos.accepted[c].numpy(), reference.infos.accepted)
        np.testing.assert_allclose(twin.states.log_prob[c].numpy(), reference.states.log_prob, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(twin_best.x[c].numpy(), reference_best.x)
        np.testing.assert_array_equal(twin_best.protected[c].numpy(), reference_best.protected)
        assert abs(float(twin_best.log_prob[c]) - reference_best.log_prob) <= 1e-12
    # The best state is the maximum over the start and the visited states.
    visited = torch.cat([twin_start.log_prob[:, None], twin.states.log_prob], dim=1)
    np.testing.assert_array_equal(twin_best.log_prob.numpy(), visited.max(dim=1).values.numpy())
    assert 0 < twin.infos.accepted.double().mean() < 1


def test_sentence_annealing_best_takes_the_first_of_tied_states_per_chain():
    """Twin ``best`` on a hand-made trace: ties go to the earlier state, the start first."""
    log_prob = torch.tensor([[-3.0, -1.0, -1.0], [-2.0, -2.0, -4.0]], dtype=torch.float64)  # (B, T)
    x = torch.arange(6).reshape(2, 3)[:, :, None].expand(-1, -1, 2).clone()  # (B, T, 2): step s of chain b holds 3b + s
    trace = sentence_annealing_twin.SentenceAnnealingTrace(
        cgmh_twin.CGMHState(x, log_prob, torch.zeros_like(x, dtype=torch.bool)), None, None, False
    )
    assert sentence_annealing_twin.best(trace).x[:, 0].tolist() == [1, 3]
    start = cgmh_twin.CGMHState(torch.full((2, 2), 9), torch.tensor([-1.0, -5.0], dtype=torch.float64),
                                torch.zeros((2, 2), dtype=torch.bool))
    assert sentence_annealing_twin.best(trace, start).x[:, 0].tolist() == [9, 3]


def test_sentence_annealing_sample_keeps_the_completed_steps_on_keyboard_interrupt():
    oracle = _oracle()
    config = cgmh.make_config(oracle, [2], num_candidates=4, gamma=0.5)
    starts = torch.as_tensor(_keyword_starts(config, seed=1))
    temperatures = sentence_annealing.geometric_schedule(2.0, 0.05, NUM_STEPS)
    full = sentence_annealing_twin.sample(_twin_rng(), starts, config, NUM_STEPS, temperatures=temperatures)
    cut_config = config._replace(model=_InterruptAfter(oracle, "next_token_log_probs_torch", 9))
    cut = sentence_annealing_twin.sample(_twin_rng(), starts, cut_config, NUM_STEPS, temperatures=temperatures)
    assert cut.interrupted and cut.states.x.shape == (NUM_CHAINS, 9, config.max_length)
    for name in ("x", "log_prob"):
        np.testing.assert_array_equal(getattr(cut.states, name).numpy(), getattr(full.states, name)[:, :9].numpy())
    for name in ("accepted", "temperature"):
        np.testing.assert_array_equal(getattr(cut.infos, name).numpy(), getattr(full.infos, name)[:, :9].numpy())
    np.testing.assert_array_equal(cut.infos.temperature[0].numpy(), temperatures[:9])
    # Best of the first nine steps (and the start), per chain.
    start = cgmh_twin.init(starts, config)
    visited = torch.cat([start.log_prob[:, None], full.states.log_prob[:, :9]], dim=1)
    best = sentence_annealing_twin.best(cut, start)
    np.testing.assert_array_equal(best.log_prob.numpy(), visited.max(dim=1).values.numpy())


def test_sentence_annealing_sample_refuses_bad_input():
    config = cgmh.make_config(_oracle(), [2], num_candidates=4)
    x0 = torch.as_tensor(_keyword_starts(config))
    with pytest.raises(ValueError, match="temperatures must be finite and > 0"):
        sentence_annealing_twin.sample(_twin_rng(), x0, config, 2, temperatures=[1.0, -0.5])
    with pytest.raises(ValueError, match="temperatures must be a non-empty"):
        sentence_annealing_twin.sample(_twin_rng(), x0, config, 0, temperatures=[])
    with pytest.raises(ValueError, match="num_steps = 2"):
        sentence_annealing_twin.sample(_twin_rng(), x0, config, 2, temperatures=[1.0])
    with pytest.raises(ValueError, match="first_step"):
        sentence_annealing_twin.sample(_twin_rng(), x0, config, 1, first_step=-1, temperatures=[1.0])
    with pytest.raises(TypeError, match="rng must be"):
        sentence_annealing_twin.sample(0, x0, config, 1, temperatures=[1.0])
    with pytest.raises(ValueError, match="rng serves 2 chains"):
        sentence_annealing_twin.sample(_twin_rng(2), x0, config, 1, temperatures=[1.0])
