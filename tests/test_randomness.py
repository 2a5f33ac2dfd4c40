"""The counter-based generator: known answers, purity, batch independence, and basic uniformity."""

import numpy as np
import pytest
from scipy import stats

from textsampling.randomness import (
    CounterGenerator,
    as_generator,
    counter_uniforms,
    draw_uniforms,
    philox4x32,
)

# Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors).
KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    assert [int(w) for w in philox4x32(counter, key)] == expected


def test_uniforms_are_the_block_function_words_as_written_in_the_docstring():
    # counter_uniforms against the known-answer-tested philox4x32, one block at a time and the float
    # formula written out: u = (a 2**20 + (b >> 12) + 1/2) / 2**52 for the word pairs (a, b).
    rng = np.random.default_rng(5)
    seed = 2**40 + 12345
    chains = np.concatenate([rng.integers(0, 2**62, 40), [0, 2**32 - 1, 2**32, 2**62 - 1]])
    steps = rng.integers(0, 2**32, chains.shape[0])
    uniforms = counter_uniforms(seed, chains, steps, 5)  # (N, 5): three blocks, the last half used
    for chain, step, row in zip(chains.tolist(), steps.tolist(), uniforms):
        expected = []
        for block in range(3):
            counter = [chain & 0xFFFFFFFF, chain >> 32, step, block]
            words = [int(w) for w in philox4x32(counter, [seed & 0xFFFFFFFF, seed >> 32])]
            expected += [(a * 2**20 + (b >> 12) + 0.5) / 2**52 for a, b in (words[:2], words[2:])]
        assert row.tolist() == expected[:5]


def test_uniforms_depend_only_on_seed_chain_and_step():
    batch = counter_uniforms(7, np.arange(10_000), 3, 5)
    alone = counter_uniforms(7, np.arange(10), 3, 5)
    np.testing.assert_array_equal(batch[:10], alone)
    single = counter_uniforms(7, 4321, 3, 5)
    np.testing.assert_array_equal(batch[4321], single)
    # a different step, seed or chain gives different numbers
    assert not np.array_equal(counter_uniforms(7, 5, 4, 5), batch[5])
    assert not np.array_equal(counter_uniforms(8, 5, 3, 5), batch[5])


def test_prefix_property_and_open_interval():
    long = counter_uniforms(1, np.arange(100), 0, 9)
    short = counter_uniforms(1, np.arange(100), 0, 4)
    np.testing.assert_array_equal(long[:, :4], short)
    assert np.all(long > 0) and np.all(long < 1)


def test_uniforms_are_uniform_and_uncorrelated():
    # Kolmogorov–Smirnov on 200,000 values; false-fail rate 1e-4 per test (fixed seed: deterministic).
    u = counter_uniforms(2024, np.arange(50_000), 11, 4)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-4
    # Neighbouring chains and neighbouring draws are uncorrelated. Under independence each
    # sqrt(n) * r is ~N(0, 1); their squares sum to a chi-square with one degree of freedom per
    # correlation. One combined test, false-fail rate 1e-4.
    n = u.shape[0]
    correlations = [np.corrcoef(u[:-1, j], u[1:, j])[0, 1] for j in range(4)]
    correlations += [np.corrcoef(u[:, j], u[:, j + 1])[0, 1] for j in range(3)]
    statistic = n * np.sum(np.square(correlations))
    assert stats.chi2.sf(statistic, len(correlations)) > 1e-4


def test_draw_uniforms_from_either_source():
    rng = np.random.default_rng(0)
    u = draw_uniforms(rng, 0, 3)
    assert u.shape == (3,) and np.all((u > 0) & (u < 1))
    gen = CounterGenerator(seed=5, chain_index=np.arange(4))
    np.testing.assert_array_equal(draw_uniforms(gen, 2, 3), counter_uniforms(5, np.arange(4), 2, 3))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: counter_uniforms(-1, 0, 0, 1), ValueError),
        (lambda: counter_uniforms(1.5, 0, 0, 1), TypeError),
        (lambda: counter_uniforms(0, -3, 0, 1), ValueError),
        (lambda: counter_uniforms(0, 0.5, 0, 1), TypeError),
        (lambda: counter_uniforms(0, 0, -1, 1), ValueError),
        (lambda: counter_uniforms(0, 0, 0, -2), ValueError),
        (lambda: as_generator(0), TypeError),
        (lambda: as_generator(np.random.RandomState(0)), TypeError),
    ],
)
def test_bad_input_is_refused(call, error):
    with pytest.raises(error):
        call()
