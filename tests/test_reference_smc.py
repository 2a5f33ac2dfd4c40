"""SMC over prefixes of the bigram oracle: the evidence estimate is unbiased, proved by enumerating the
whole particle system.

E[Z_hat] is computed exactly: starting from the initial system, every step's outcomes are enumerated with
their probabilities -- the resampling's (each resampling uniform over the intervals cut by the cumulative
weights: the schemes' exact laws) and each particle's token (its uniform over the intervals cut by the
cumulative proposal probabilities) -- by calling the *code's* step at one point inside each interval. A
particle's token depends on its own uniform only, so the per-particle outcomes are read from a few calls
and combined as a product. Identical systems are merged, and E[Z_hat] = sum over final systems of
probability x mean weight must equal Z = sum_x p(x) chi(x) (enumerated) to 1e-12.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling.gallery.smc import STEP_BUGS
from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import chain, resampling, smc
from textsampling.targets.sequences import BigramLM

KEYWORDS = ["t1"]


def make_oracle(vocab_size, max_length, seed=11):
    return BigramOracle(BigramLM.random(np.random.default_rng(seed), vocab_size, max_length))


def exact_log_normalizer(oracle, potential):
    """log Z = log sum_x p(x) chi(x) over every sentence of at most L tokens."""
    sentences = oracle.bigram.enumerate_states()
    finished = np.ones(sentences.shape[0], dtype=bool)
    return float(logsumexp(oracle.bigram.log_prob(sentences) + potential(sentences, finished)))


def _intervals(breakpoints):
    cuts = np.unique(np.concatenate([[0.0, 1.0], np.clip(np.asarray(breakpoints, dtype=np.float64), 0.0, 1.0)]))
    middles = (cuts[:-1] + cuts[1:]) / 2
    lengths = np.diff(cuts)
    keep = (lengths > 0) & (middles > 0) & (middles < 1)
    return list(zip(middles[keep], lengths[keep]))


def _resampling_outcomes(log_weights, scheme):
    """[(probability, resampling uniforms)] covering every interval of the scheme's uniforms."""
    num_particles = log_weights.shape[0]
    k = resampling.num_uniforms(num_particles, scheme)
    cumulative = np.cumsum(np.exp(log_weights - logsumexp(log_weights)))
    if scheme == "systematic":
        scaled = num_particles * cumulative
        return [(length, np.array([middle])) for middle, length in _intervals(scaled - np.floor(scaled))]
    if scheme == "residual":
        scaled = num_particles * np.exp(log_weights - logsumexp(log_weights))
        copies = np.floor(scaled)
        num_residual = num_particles - int(copies.sum())
        residual_cumulative = np.cumsum(scaled - copies) / max(num_residual, 1)
        per_uniform = [_intervals(residual_cumulative)] * num_residual + [[(0.5, 1.0)]] * (k - num_residual)
    elif scheme == "multinomial":
        per_uniform = [_intervals(cumulative)] * k
    else:
        per_uniform = [_intervals(num_particles * cumulative - n) for n in range(k)]
    outcomes = []
    for combination in itertools.product(*per_uniform):
        outcomes.append((float(np.prod([length for _, length in combination])),
                         np.array([middle for middle, _ in combination])))
    return outcomes


def _proposal_breakpoints(row, finished, model, potential, log_twist):
    """Cumulative probabilities of both proposals (bootstrap and guided) for one particle: a superset of
    the breakpoints of its token as a function of its uniform."""
    if finished:
        return []
    rows = row[None, :]
    log_next = model.next_token_log_probs(rows)[0]
    lengths = np.array([int(np.sum(row != -1))])
    points = [np.cumsum(np.exp(log_next - logsumexp(log_next)))]
    candidates = np.flatnonzero(np.isfinite(log_next))
    extended, is_end = smc.extend_rows(np.repeat(rows, candidates.size, 0), np.repeat(lengths, candidates.size),
                                       candidates, model.end_token_id)
    log_target = potential(extended, is_end)
    if log_twist is not None:
        log_target = log_target + np.where(is_end, 0.0, log_twist(extended))
    log_target = np.where(~is_end & (lengths[0] >= row.shape[0]), -np.inf, log_target)
    guided = np.full(log_next.shape, -np.inf)
    guided[candidates] = log_next[candidates] + log_target
    if np.isfinite(logsumexp(guided)):
        points.append(np.cumsum(np.exp(guided - logsumexp(guided))))
    return np.concatenate(points)


def _key(state):
    return b"".join(np.ascontiguousarray(field).tobytes() for field in state)


def exact_expected_evidence(x0, model, potential, num_steps, step_fn=smc.step, **params):
    """E[Z_hat] after ``num_steps`` steps, over every resampling and proposal outcome of ``step_fn``."""
    log_twist = params.get("log_twist")
    scheme = params.get("scheme", "systematic")
    state = smc.init(x0, model, potential, log_twist=log_twist)
    num_particles = state.x.shape[0]
    k = resampling.num_uniforms(num_particles, scheme)
    systems = {_key(state): (1.0, state)}
    for _ in range(num_steps):
        following = {}
        for probability, state in systems.values():
            probe = np.full(k + num_particles, 0.5)
            _, probe_info = step_fn(probe, state, model, potential, **params)
            outcomes = _resampling_outcomes(state.log_weight, scheme) if probe_info.resampled else [(1.0, probe[:k])]
            intervals = [  # each particle's token intervals, were it the ancestor of a particle
                _intervals(_proposal_breakpoints(state.x[a], state.finished[a], model, potential, log_twist))
                for a in range(num_particles)
            ]
            for resampling_probability, resampling_uniforms in outcomes:
                uniforms = np.concatenate([resampling_uniforms, np.full(num_particles, 0.5)])
                _, info = step_fn(uniforms, state, model, potential, **params)
                ancestors = info.ancestors
                per_particle = [intervals[a] for a in ancestors]
                # one call per interval index: particle n reads its own j-th interval (or its last)
                results = []
                for j in range(max(len(p) for p in per_particle)):
                    uniforms[k:] = [p[min(j, len(p) - 1)][0] for p in per_particle]
                    results.append(step_fn(uniforms.copy(), state, model, potential, **params)[0])
                choices = [[(p[j][1], results[j], n) for j in range(len(p))] for n, p in enumerate(per_particle)]
                for combination in itertools.product(*choices):
                    rows = [result_state for _, result_state, _ in combination]
                    child = type(state)(*(
                        np.array([getattr(rows[n], field)[n] for n in range(num_particles)])
                        for field in state._fields
                    ))
                    weight = probability * resampling_probability * float(np.prod([c[0] for c in combination]))
                    key = _key(child)
                    previous = following.get(key, (0.0, child))[0]
                    following[key] = (previous + weight, child)
        systems = following
    total_probability = sum(p for p, _ in systems.values())
    assert abs(total_probability - 1.0) < 1e-12, total_probability
    assert all(bool(np.all(s.finished)) for _, s in systems.values()), "some particle never finished"
    return sum(p * np.exp(smc.log_evidence(s)) for p, s in systems.values())


CASES = [
    # (num_particles, vocab_size, max_length)
    (2, 2, 3),
    (3, 2, 2),
]


RESAMPLING = [(scheme, 1.0) for scheme in resampling.SCHEMES] + [("systematic", 0.0), ("multinomial", 0.9)]
# Three particles and multinomial or stratified resampling: up to 27 resampling outcomes per system (~20 s each).
SLOW = {(3, "multinomial"), (3, "stratified")}


@pytest.mark.parametrize(
    "num_particles, vocab_size, max_length, scheme, ess_threshold",
    [
        pytest.param(*case, *resampling_case, marks=[pytest.mark.slow] if (case[0], resampling_case[0]) in SLOW else [])
        for case in CASES
        for resampling_case in RESAMPLING
    ],
)
@pytest.mark.parametrize("proposal", smc.PROPOSALS)
def test_evidence_is_unbiased_exactly(num_particles, vocab_size, max_length, proposal, scheme, ess_threshold):
    oracle = make_oracle(vocab_size, max_length)
    potential = smc.KeywordPotential(oracle.encode_keywords(KEYWORDS), max_length)
    x0 = smc.empty_prefixes(num_particles, max_length)
    expected = exact_expected_evidence(x0, oracle, potential, max_length + 1, proposal=proposal, scheme=scheme,
                                       ess_threshold=ess_threshold)
    exact = np.exp(exact_log_normalizer(oracle, potential))
    assert abs(expected - exact) < 1e-12, (expected, exact)


def test_evidence_is_unbiased_with_a_twist_and_two_keywords():
    oracle = make_oracle(3, 2, seed=12)
    keywords = ["t0", "t2"]
    potential = smc.KeywordPotential(oracle.encode_keywords(keywords), 2)
    # a twist that is not the exact one (a smooth function of the prefix): the estimate stays unbiased
    log_twist = lambda rows: -0.3 * np.sum(rows == 1, axis=1) + 0.2 * (rows[:, 0] == 0)  # noqa: E731
    exact = np.exp(exact_log_normalizer(oracle, potential))
    for proposal in smc.PROPOSALS:
        expected = exact_expected_evidence(smc.empty_prefixes(2, 2), oracle, potential, 3, proposal=proposal,
                                           scheme="stratified", ess_threshold=1.0, log_twist=log_twist)
        assert abs(expected - exact) < 1e-12, (proposal, expected, exact)


@pytest.mark.parametrize("name", sorted(STEP_BUGS))
def test_a_wrong_step_fails_the_exact_test(name):
    wrong_step, proposal = STEP_BUGS[name]
    oracle = make_oracle(2, 3)
    potential = smc.KeywordPotential(oracle.encode_keywords(KEYWORDS), 3)
    exact = np.exp(exact_log_normalizer(oracle, potential))
    expected = exact_expected_evidence(smc.empty_prefixes(2, 3), oracle, potential, 4, step_fn=wrong_step,
                                       proposal=proposal, scheme="multinomial", ess_threshold=1.0)
    assert abs(expected - exact) > 1e-3, f"{name}: E[Z_hat] = {expected} vs Z = {exact}: the test cannot see it"


def test_the_exact_twist_with_the_guided_proposal_gives_zero_variance_weights():
    oracle = make_oracle(3, 3, seed=13)
    keywords = ["t0", "t2"]
    potential = smc.KeywordPotential(oracle.encode_keywords(keywords), 3)
    log_twist = smc.oracle_log_twist(oracle, keywords, 3)
    log_z = exact_log_normalizer(oracle, potential)
    for run in range(20):
        trace = smc.sample(CounterGenerator(3, run), smc.empty_prefixes(5, 3), oracle, potential, 4,
                           proposal="guided", scheme="multinomial", ess_threshold=0.5, log_twist=log_twist)
        np.testing.assert_allclose(trace.states.log_weight, log_z, rtol=0, atol=1e-12)
        assert np.all(trace.final_state.finished)
        assert np.all(potential(trace.final_state.x, trace.final_state.finished) == 0.0)


def test_the_exact_twist_is_the_probability_of_the_constraint_given_the_prefix():
    oracle = make_oracle(3, 3, seed=14)
    keywords = ["t0", "t2"]
    potential = smc.KeywordPotential(oracle.encode_keywords(keywords), 3)
    log_twist = smc.oracle_log_twist(oracle, keywords, 3)
    sentences = oracle.bigram.enumerate_states()
    log_gamma = oracle.bigram.log_prob(sentences) + potential(sentences, np.ones(len(sentences), dtype=bool))
    lengths = np.sum(sentences != -1, axis=1)
    for prefix_length in range(0, 3):
        for prefix in itertools.product(range(3), repeat=prefix_length):
            row = np.full((1, 3), -1)
            row[0, :prefix_length] = prefix
            starts = (lengths >= prefix_length) & np.all(sentences[:, :prefix_length] == prefix, axis=1)
            log_prefix = 0.0 if prefix_length == 0 else float(oracle.sequence_log_probs(row)[0]
                                                              - oracle.next_token_log_probs(row)[0, 3])
            expected = logsumexp(log_gamma[starts]) - log_prefix if starts.any() else -np.inf
            assert log_twist(row)[0] == pytest.approx(expected, abs=1e-12), prefix


def test_keyword_potential_never_rules_out_a_reachable_sentence():
    # multi-token units that overlap ("1 2" and "2 3", "2"): G > 0 on every prefix of a sentence with chi = 1
    potential = smc.KeywordPotential([[1, 2], [2, 3], [2]], max_length=4, continuation_ids=[5])
    sentences = np.array(list(itertools.product(range(6), repeat=4)))
    finished = np.ones(len(sentences), dtype=bool)
    good = sentences[potential(sentences, finished) == 0.0]
    assert len(good) > 0
    assert not np.any(potential(np.array([[1, 2, 5, 3]]), [True]) == 0.0)  # "2" continued by piece 5
    for prefix_length in range(0, 4):
        prefixes = np.where(np.arange(4) < prefix_length, good, -1)
        assert np.all(potential(prefixes, np.zeros(len(good), dtype=bool)) == 0.0), prefix_length
    # and it does rule out: with 1 token left and two units missing
    assert potential(np.array([[0, 0, 0, -1]]), [False])[0] == -np.inf


def test_sample_is_init_plus_the_runner_and_the_trace_has_the_genealogy():
    oracle = make_oracle(3, 3)
    potential = smc.KeywordPotential(oracle.encode_keywords(["t1"]), 3)
    trace = smc.sample(CounterGenerator(0, 0), smc.empty_prefixes(4, 3), oracle, potential, 4,
                       proposal="guided", scheme="residual", ess_threshold=1.0)
    assert isinstance(trace, chain.Trace) and smc.SMCTrace is chain.Trace
    assert trace.states.x.shape == (4, 4, 3) and trace.infos.ancestors.shape == (4, 4)
    assert trace.infos.ess.shape == (4,) and np.all(trace.infos.resampled)
    assert trace.infos.log_evidence[-1] == pytest.approx(smc.log_evidence(trace.final_state))
    # continuing with first_step gives the run made in one go
    first = smc.sample(CounterGenerator(0, 0), smc.empty_prefixes(4, 3), oracle, potential, 2, proposal="guided",
                       scheme="residual", ess_threshold=1.0)
    state = first.final_state
    for t in range(2, 4):
        uniforms = CounterGenerator(0, 0).uniforms(t, smc.num_uniforms(4, "residual"))
        state, _ = smc.step(uniforms, state, oracle, potential, proposal="guided", scheme="residual",
                            ess_threshold=1.0)
    np.testing.assert_array_equal(state.x, trace.final_state.x)
    np.testing.assert_array_equal(state.log_weight, trace.final_state.log_weight)


def test_bad_arguments_are_refused_by_name():
    oracle = make_oracle(2, 3)
    potential = smc.KeywordPotential(oracle.encode_keywords(["t1"]), 3)
    state = smc.init(smc.empty_prefixes(2, 3), oracle, potential)
    uniforms = np.full(smc.num_uniforms(2), 0.5)
    with pytest.raises(ValueError, match="proposal must be one of"):
        smc.step(uniforms, state, oracle, potential, proposal="greedy")
    with pytest.raises(ValueError, match="ess_threshold"):
        smc.step(uniforms, state, oracle, potential, ess_threshold=1.5)
    with pytest.raises(ValueError, match="scheme must be one of"):
        smc.step(uniforms, state, oracle, potential, scheme="fancy")
    with pytest.raises(ValueError, match="uniforms"):
        smc.step(uniforms[:-1], state, oracle, potential)
    with pytest.raises(ValueError, match="x0"):
        smc.init(np.full((2, 3), 0), oracle, potential)


def test_keyword_potential_token_classes_give_the_same_extensions_as_every_token():
    # the shortcut of extension_log_potentials (one token per class) against every token, on units that
    # overlap, a continuation piece that is also in a unit, and prefixes of every length
    potential = smc.KeywordPotential([[1, 2], [2, 3], [4]], max_length=4, continuation_ids=[3, 5, 6])
    rng = np.random.default_rng(7)
    vocab, end = 9, 8
    rows = np.full((300, 4), -1)
    lengths = rng.integers(0, 5, 300)
    for m, length in enumerate(lengths):
        rows[m, :length] = rng.integers(0, 8, length)
    log_next = np.where(rng.random((300, vocab)) < 0.8, 0.0, -np.inf)
    log_next[lengths == 0, end] = -np.inf
    fast = smc.extension_log_potentials(rows, lengths, log_next, end, potential, None)
    every = smc.extension_log_potentials(rows, lengths, log_next, end, lambda r, f: potential(r, f), None)
    np.testing.assert_array_equal(fast, every)
    assert np.any(fast == 0.0) and np.any((fast == -np.inf) & np.isfinite(log_next))


def test_ancestral_lines_follow_the_ancestors_back():
    ancestors = np.array([[0, 1, 2], [0, 0, 2], [2, 1, 1]])
    lines = smc.ancestral_lines(ancestors)
    np.testing.assert_array_equal(lines, [[2, 0, 0], [2, 0, 0], [2, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(smc.ancestral_lines(np.tile(np.arange(4), (3, 1))), np.tile(np.arange(4), (4, 1)))
    with pytest.raises(ValueError, match="ancestors must have shape"):
        smc.ancestral_lines([0, 1])
