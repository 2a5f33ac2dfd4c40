"""The sentence tempering twin against its NumPy reference: same uniforms in, same replicas and decisions out.

Chain ``b`` of one batched torch run (counter generator, chain index ``b``) is compared with the
reference chain for ``CounterGenerator(seed, b)``, in float64, step by step, on the bigram oracle (which
has the ``*_torch`` methods the twin calls): every replica's move type, position, proposal and CGMH
decision, every swap's parity, ratio and decision, the sentences, scores and locked pieces. Scores to
rounding (1e-12). A decision could differ only if a uniform fell within an ulp of its threshold:
probability of order 1e-16 per decision. Deterministic (fixed seeds).
"""

import lm_chains
import numpy as np
import pytest
import torch
from twin_assertions import assert_close_to_reference

from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import cgmh
from textsampling.reference import sentence_tempering as reference
from textsampling.torch import sentence_tempering
from textsampling.torch.randomness import CounterGenerator

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEED = 19961604
NUM_CHAINS = 4
NUM_STEPS = 30

#: name -> (keywords, temperatures, one start per replica or one per chain)
CASES = {
    "one-keyword-three-replicas": ([2], np.array([1.0, 2.5, 6.0]), "per-replica"),
    "two-piece-keyword-two-replicas": ([[2, 0]], np.array([0.7, 3.0]), "per-chain"),
}


def _starts(config, num_replicas, layout):
    per_chain = lm_chains.keyword_starts(config, NUM_CHAINS)  # (B, L): lengths 2.. with the keywords
    if layout == "per-chain":
        return per_chain
    pool = lm_chains.keyword_starts(config, NUM_CHAINS * num_replicas, seed=1)
    return pool.reshape(NUM_CHAINS, num_replicas, -1)  # (B, M, L): every replica its own sentence


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_sentence_tempering_twin_makes_the_reference_decisions(case, device):
    keywords, temperatures, layout = CASES[case]
    oracle = lm_chains.oracle()
    config = cgmh.make_config(oracle, keywords, num_candidates=3, gamma=0.8)
    starts = _starts(config, len(temperatures), layout)
    trace = sentence_tempering.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)), torch.tensor(starts, device=device), config,
        NUM_STEPS, temperatures=temperatures,
    )
    assert trace.states.x.shape == (NUM_CHAINS, NUM_STEPS, len(temperatures), config.max_length)
    for chain in range(NUM_CHAINS):
        expected = reference.sample(
            NumpyCounterGenerator(SEED, chain), starts[chain], config, NUM_STEPS, temperatures=temperatures
        )
        moves = np.asarray(cgmh.MOVES)[trace.infos.move[chain].cpu().numpy()]
        np.testing.assert_array_equal(moves, expected.infos.move.astype(str))
        for field in ("position", "proposal", "accepted", "swap_proposed", "swap_accepted"):
            np.testing.assert_array_equal(getattr(trace.infos, field)[chain].cpu().numpy(),
                                          getattr(expected.infos, field), err_msg=field)
        for field in ("x", "protected"):
            np.testing.assert_array_equal(getattr(trace.states, field)[chain].cpu().numpy(),
                                          getattr(expected.states, field), err_msg=field)
        assert_close_to_reference(trace.states.log_prob[chain], expected.states.log_prob)
        assert_close_to_reference(trace.infos.log_accept_prob[chain], expected.infos.log_accept_prob)
        assert_close_to_reference(trace.infos.swap_log_accept_prob[chain], expected.infos.swap_log_accept_prob)
    # The test has teeth: every pair proposes swaps, some accepted and some not; every replica moves.
    swaps = trace.infos.swap_accepted[trace.infos.swap_proposed].double().mean()
    assert 0 < swaps < 1 and trace.infos.swap_proposed.any(dim=(0, 1)).all()
    assert trace.infos.accepted.any(dim=(0, 1)).all()


def test_twin_refuses_a_replica_count_mismatch_and_a_lone_sentence_without_num_replicas():
    oracle = lm_chains.oracle()
    config = cgmh.make_config(oracle, [2], num_candidates=3)
    starts = torch.tensor(lm_chains.keyword_starts(config, NUM_CHAINS))
    with pytest.raises(ValueError, match="num_replicas"):
        sentence_tempering.init(starts, config)
    state = sentence_tempering.init(starts, config, num_replicas=2)
    uniforms = torch.full((NUM_CHAINS, sentence_tempering.num_uniforms(2)), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="2 replicas but temperatures has 3"):
        sentence_tempering.step(uniforms, state, config, temperatures=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        sentence_tempering.step(uniforms, state, config, temperatures=[2.0, 1.0])
