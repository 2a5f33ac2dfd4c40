"""Torch twins == NumPy references, chain by chain, fed the same uniforms (float64, CPU).

Uniforms come from the counter-based generator: step ``t`` of chain ``c`` gets
``counter_uniforms(seed, c, t, k)`` in both implementations, and every step's states (and accept
decisions) must agree exactly; log acceptance ratios to float64 rounding.
"""

import lm_chains
import numpy as np
import pytest
import torch

from textsampling.lm.oracle import BigramOracle, MaskSensitiveOracle
from textsampling.randomness import counter_uniforms
from textsampling.reference import cgmh, mlm_gibbs, sentence_annealing
from textsampling.reference import mlm_metropolis_hastings as mlm_mh
from textsampling.targets import PAD, BigramLM
from textsampling.torch import cgmh as cgmh_twin
from textsampling.torch import mlm_gibbs as mlm_gibbs_twin
from textsampling.torch import mlm_metropolis_hastings as mlm_mh_twin
from textsampling.torch import sentence_annealing as sentence_annealing_twin

NUM_CHAINS, NUM_STEPS = 6, 25


def _oracle(seed=2, vocab_size=5, max_length=5):
    return lm_chains.oracle(seed, vocab_size, max_length)


def _starts(oracle, seed=0):
    return lm_chains.starts(oracle, NUM_CHAINS, seed)


def _keyword_starts(config, seed=0):
    return lm_chains.keyword_starts(config, NUM_CHAINS, seed)


def _uniforms(step, num_uniforms, seed=3):
    return counter_uniforms(seed, np.arange(NUM_CHAINS), step, num_uniforms)  # (B, k)


def _mask_sensitive_oracle():
    """The oracle that looks at x_i: twin == reference under it means both put [MASK] at i."""
    return MaskSensitiveOracle(_oracle().bigram)


@pytest.mark.parametrize(
    "scan, temperature, top_k, sensitive",
    [("random", 1.0, None, False), ("systematic", 1.0, None, False), ("random", 0.7, 3, False),
     ("random", 1.0, None, True), ("systematic", 1.0, None, True)],
)
def test_mlm_gibbs_twin_equals_reference(scan, temperature, top_k, sensitive):
    oracle = _mask_sensitive_oracle() if sensitive else _oracle()
    width = oracle.max_length
    k = mlm_gibbs.num_uniforms(scan, width)
    references = [mlm_gibbs.init_all_mask(u, oracle, width) for u in _uniforms(mlm_gibbs.INIT_STEP, 1)[:, 0]]
    twin = mlm_gibbs_twin.init_all_mask(torch.as_tensor(_uniforms(mlm_gibbs.INIT_STEP, 1)), oracle, width)
    np.testing.assert_array_equal(twin.x.numpy(), np.array([r.x for r in references]))
    for t in range(NUM_STEPS):
        uniforms = _uniforms(t, k)
        steps = [mlm_gibbs.step(u, r, oracle, scan=scan, temperature=temperature, top_k=top_k)
                 for u, r in zip(uniforms, references)]
        references = [s[0] for s in steps]
        twin, info = mlm_gibbs_twin.step(torch.as_tensor(uniforms), twin, oracle, scan=scan, temperature=temperature,
                                         top_k=top_k)
        np.testing.assert_array_equal(twin.x.numpy(), np.array([r.x for r in references]))
        np.testing.assert_array_equal(info.position.numpy(), np.array([s[1].position for s in steps]))
        np.testing.assert_array_equal(info.token.numpy(), np.array([s[1].token for s in steps]))
    assert info.changes_target == (temperature != 1.0 or top_k is not None)


@pytest.mark.parametrize("kind, sensitive", [("pll", False), ("raw_logit", False), ("pll", True)])
def test_mlm_mh_twin_equals_reference(kind, sensitive):
    oracle = _mask_sensitive_oracle() if sensitive else _oracle()
    starts = _starts(oracle)
    references = [mlm_mh.init(x, oracle, energy_kind=kind) for x in starts]
    twin = mlm_mh_twin.init(torch.as_tensor(starts), oracle, energy_kind=kind)
    np.testing.assert_allclose(twin.log_prob.numpy(), [r.log_prob for r in references], atol=1e-12)
    decisions = []
    for t in range(NUM_STEPS):
        uniforms = _uniforms(t, mlm_mh.num_uniforms())
        steps = [mlm_mh.step(u, r, oracle, energy_kind=kind) for u, r in zip(uniforms, references)]
        references = [s[0] for s in steps]
        twin, info = mlm_mh_twin.step(torch.as_tensor(uniforms), twin, oracle, energy_kind=kind)
        np.testing.assert_array_equal(info.accepted.numpy(), [s[1].accepted for s in steps])
        np.testing.assert_allclose(info.log_accept_prob.numpy(), [s[1].log_accept_prob for s in steps], atol=1e-12)
        np.testing.assert_array_equal(twin.x.numpy(), np.array([r.x for r in references]))
        decisions.extend(info.accepted.tolist())
    assert 0 < np.mean(decisions) < 1  # both outcomes were compared


def _log_similarity(states):
    return 0.25 * (states == 1).sum(1)  # works on NumPy arrays and torch tensors alike


CGMH_VARIANTS = [{}, {"position_ratio": False}, {"candidate_set": "biased"}, {"temperature": 0.3},
                 {"continuation_tokens": (0,)}]
CGMH_KEYWORDS = [[2], [0, 3], [[1, 4]], [1, 1], []]


@pytest.mark.parametrize("keywords", CGMH_KEYWORDS, ids=str)
@pytest.mark.parametrize("variant", CGMH_VARIANTS + [{"keyword_rule": "position"}], ids=str)
def test_cgmh_twin_equals_reference(variant, keywords):
    if variant.get("keyword_rule") == "position" and not keywords:
        pytest.skip("the position rule needs a keyword placement")
    oracle = _oracle()
    config = cgmh.make_config(oracle, keywords, num_candidates=3, gamma=0.8, log_similarity_fn=_log_similarity,
                              move_probabilities=(0.4, 0.35, 0.25), **variant)
    if config.keyword_rule == "position":
        references = [cgmh.keyword_state(config)] * NUM_CHAINS
        twin = cgmh_twin.init(torch.as_tensor(np.array([r.x for r in references])), config,
                              protected=torch.as_tensor(np.array([r.protected for r in references])))
    else:
        starts = _keyword_starts(config)
        references = [cgmh.init(x, config) for x in starts]
        twin = cgmh_twin.init(torch.as_tensor(starts), config)
    np.testing.assert_array_equal(twin.protected.numpy(), np.array([r.protected for r in references]))
    moves = set()
    for t in range(4 * NUM_STEPS):
        uniforms = _uniforms(t, cgmh.num_uniforms())
        steps = [cgmh.step(u, r, config) for u, r in zip(uniforms, references)]
        references = [s[0] for s in steps]
        twin, info = cgmh_twin.step(torch.as_tensor(uniforms), twin, config)
        np.testing.assert_array_equal(info.accepted.numpy(), [s[1].accepted for s in steps])
        np.testing.assert_array_equal(twin.x.numpy(), np.array([r.x for r in references]))
        np.testing.assert_array_equal(twin.protected.numpy(), np.array([r.protected for r in references]))
        np.testing.assert_allclose(twin.log_prob.numpy(), [r.log_prob for r in references], atol=1e-12)
        np.testing.assert_allclose(info.log_accept_prob.numpy(), [s[1].log_accept_prob for s in steps], atol=1e-10)
        moves.update((s[1].move, s[1].accepted) for s in steps)
    assert {(m, True) for m in cgmh.MOVES} <= moves  # every move type was accepted somewhere


def test_cgmh_twin_decides_as_the_reference_from_every_sentence():
    """Every enumerated sentence (two keywords, one of two pieces) x a grid of uniforms: same decision, same state."""
    oracle = _oracle(vocab_size=3, max_length=4)
    config = cgmh.make_config(oracle, [[2, 0], 1], num_candidates=2, log_similarity_fn=_log_similarity,
                              move_probabilities=(0.3, 0.45, 0.25), continuation_tokens=(1,))
    states = cgmh.enumerate_sentences(config)
    grid = [[u0, u1, u2, u3] for u0 in (0.1, 0.5, 0.9) for u1 in np.linspace(0.05, 0.95, 5)
            for u2 in (0.3, 0.8) for u3 in (0.2, 0.9)]
    uniforms = torch.as_tensor(grid, dtype=torch.float64)  # (B, 4)
    for x in states:
        state = cgmh.init(x, config)
        batch = cgmh_twin.init(torch.as_tensor(np.repeat(x[None], len(grid), axis=0)), config)
        twin_state, twin_info = cgmh_twin.step(uniforms, batch, config)
        for row, u in enumerate(grid):
            new_state, info = cgmh.step(u, state, config)
            assert info.accepted == bool(twin_info.accepted[row])
            np.testing.assert_array_equal(new_state.x, twin_state.x[row].numpy())
            np.testing.assert_array_equal(new_state.protected, twin_state.protected[row].numpy())


def test_sentence_annealing_twin_equals_reference():
    oracle = _oracle()
    config = cgmh.make_config(oracle, [2], num_candidates=4, gamma=0.5)
    starts = _keyword_starts(config, seed=1)
    references = [cgmh.init(x, config) for x in starts]
    twin = cgmh_twin.init(torch.as_tensor(starts), config)
    decisions = []
    for t, temperature in enumerate(sentence_annealing.geometric_schedule(2.0, 0.05, NUM_STEPS)):
        uniforms = _uniforms(t, sentence_annealing.num_uniforms())
        steps = [sentence_annealing.step(u, r, config, temperature=temperature) for u, r in zip(uniforms, references)]
        references = [s[0] for s in steps]
        twin, info = sentence_annealing_twin.step(torch.as_tensor(uniforms), twin, config, temperature=temperature)
        np.testing.assert_array_equal(twin.x.numpy(), np.array([r.x for r in references]))
        np.testing.assert_array_equal(info.accepted.numpy(), [s[1].accepted for s in steps])
        np.testing.assert_allclose(info.log_accept_prob.numpy(), [s[1].log_accept_prob for s in steps], atol=1e-10)
        np.testing.assert_array_equal(info.temperature.numpy(), [s[1].temperature for s in steps])
        assert all(s[1].temperature == temperature for s in steps)
        decisions.extend(info.accepted.tolist())
    assert 0 < np.mean(decisions) < 1  # both outcomes were compared


def test_cgmh_with_only_impossible_candidates_rejects_in_both_twins():
    # A zero bigram transition (0 -> 1) and K = 1: some moves' only candidate sentence has rho = 0.
    # Such a move proposes nothing and is a rejection, in the reference and the twin alike, and the
    # exact kernel stays in detailed balance.
    rng = np.random.default_rng(1)
    transition = rng.normal(size=(3, 4))
    transition[0, 1] = -np.inf
    oracle = BigramOracle(BigramLM(rng.normal(size=3), transition, 4))
    config = cgmh.make_config(oracle, [1], num_candidates=1, move_probabilities=(0.3, 0.45, 0.25))
    states = cgmh.enumerate_sentences(config)
    grid = [[u0, u1, 0.5, 0.5] for u0 in (0.1, 0.5, 0.9) for u1 in np.linspace(0.05, 0.95, 7)]
    uniforms = torch.as_tensor(grid, dtype=torch.float64)  # (B, 4)
    for x in states:
        state = cgmh.init(x, config)
        if not np.isfinite(state.log_prob):
            continue
        batch = cgmh_twin.init(torch.as_tensor(np.repeat(x[None], len(grid), axis=0)), config)
        twin_state, twin_info = cgmh_twin.step(uniforms, batch, config)
        for row, u in enumerate(grid):
            new_state, info = cgmh.step(u, state, config)
            assert info.accepted == bool(twin_info.accepted[row])
            np.testing.assert_array_equal(new_state.x, twin_state.x[row].numpy())
    matrix = cgmh.transition_matrix(config, states)
    log_rho = cgmh.log_target(config, states)
    pi = np.exp(log_rho - np.logaddexp.reduce(log_rho))
    flow = pi[:, None] * matrix
    assert np.max(np.abs(flow - flow.T)) < 1e-12


def test_cgmh_twin_refuses_malformed_input():
    oracle = _oracle()
    config = cgmh.make_config(oracle, [2], num_candidates=2)
    x = torch.tensor([[1, 2, PAD, PAD, PAD]] * 3)
    state = cgmh_twin.init(x, config)
    good = torch.full((3, 4), 0.5, dtype=torch.float64)
    cgmh_twin.step(good, state, config)
    with pytest.raises(ValueError, match="open interval"):
        cgmh_twin.step(torch.full((3, 4), 1.5, dtype=torch.float64), state, config)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        cgmh_twin.step(torch.full((3, 3), 0.5, dtype=torch.float64), state, config)
    with pytest.raises(ValueError, match="leading chain dimension"):
        cgmh_twin.step(torch.full((2, 4), 0.5, dtype=torch.float64), state, config)
    with pytest.raises(ValueError, match="does not contain every keyword"):
        cgmh_twin.init(torch.tensor([[1, 0, PAD, PAD, PAD]]), config)
    with pytest.raises(ValueError, match="max_length = 5"):
        cgmh_twin.init(torch.full((3, 6), 2), config)
    with pytest.raises(ValueError, match="only PAD"):
        cgmh_twin.init(torch.tensor([[2, PAD, 1, PAD, PAD]]), config)
    with pytest.raises(TypeError, match="not a state"):
        cgmh_twin.init(state, config)
    with pytest.raises(ValueError, match="protected is only read"):
        cgmh_twin.init(x, config, protected=torch.zeros_like(x, dtype=torch.bool))
    position = config._replace(keyword_rule="position")
    protected = torch.zeros_like(x, dtype=torch.bool)
    with pytest.raises(ValueError, match="protected"):
        cgmh_twin.init(x, position, protected=protected[:, :3])
    with pytest.raises(TypeError, match="protected"):
        cgmh_twin.init(x, position, protected=protected.to(torch.int64))
