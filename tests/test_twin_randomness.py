"""The torch counter generator: Random123 known answers, bit-equality with NumPy, batch independence."""

import os

import numpy as np
import pytest
import torch

from textsampling import randomness as reference
from textsampling.torch import randomness as twin
from textsampling.torch.randomness import (
    _multiply_high_low,
    _philox_rounds,
    _philox_rounds_in_place,
    _round_keys,
    _uniforms_from_words,
    _uniforms_from_words_in_place,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

# Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors), as in test_randomness.py.
KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected, device):
    words = twin.philox4x32(torch.tensor(counter, device=device), key)
    assert words.cpu().tolist() == expected


def test_split_product_is_the_exact_64_bit_product():
    # Edge words (0, 1, 2**16 +- 1, 2**32 - 1) and random ones, against Python's exact integers.
    rng = np.random.default_rng(0)
    words = [0, 1, 2**16 - 1, 2**16, 2**16 + 1, 2**31, 2**32 - 1] + rng.integers(0, 2**32, 500).tolist()
    for multiplier in (reference.PHILOX_M0, reference.PHILOX_M1, 2**32 - 1):
        high, low = _multiply_high_low(multiplier, torch.tensor(words, dtype=torch.int64))
        exact = [multiplier * w for w in words]
        assert high.tolist() == [p >> 32 for p in exact]
        assert low.tolist() == [p & 0xFFFFFFFF for p in exact]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1, 2**32 + 7, 2**64 - 1])
def test_bit_identical_to_numpy(seed, device):
    chains = np.concatenate([np.arange(300), [2**32 - 1, 2**32, 2**40 + 3, 2**62 - 1]])
    for step in (0, 1, 12345, 2**32 - 1):
        for num_uniforms in (1, 2, 5):
            expected = reference.counter_uniforms(seed, chains, step, num_uniforms)
            got = twin.counter_uniforms(
                seed, torch.tensor(chains, device=device), step, num_uniforms, dtype=torch.float64
            )
            np.testing.assert_array_equal(got.cpu().numpy(), expected)
            got32 = twin.counter_uniforms(seed, torch.tensor(chains, device=device), step, num_uniforms)
            assert got32.dtype == torch.float32
            np.testing.assert_array_equal(got32.cpu().numpy(), np.minimum(expected.astype(np.float32), 1 - 2**-24))


def test_pure_and_in_place_forms_are_the_same_function():
    # The pure form (what torch.compile fuses) and the in-place eager form, against the NumPy block
    # function, on random words and on the edge words; then the conversion to floats of both forms.
    rng = np.random.default_rng(1)
    counter = np.concatenate([rng.integers(0, 2**32, (500, 4)), [[0] * 4, [2**32 - 1] * 4, [2**31] * 4]])
    key = (0x9E3779B9, 2**32 - 1)
    expected = reference.philox4x32(counter, key)
    words = [torch.tensor(counter[:, i].astype(np.int64)) for i in range(4)]
    for rounds in (0, 1, 2, 10):
        expected = reference.philox4x32(counter, key, rounds=rounds).astype(np.int64)
        pure = torch.stack(_philox_rounds(*words, _round_keys(key, rounds)), dim=-1)
        in_place = torch.stack(_philox_rounds_in_place(*words, _round_keys(key, rounds)), dim=-1)
        np.testing.assert_array_equal(pure.numpy(), expected)
        np.testing.assert_array_equal(in_place.numpy(), expected)
    for dtype in (torch.float32, torch.float64):
        pure = _uniforms_from_words(*words, dtype, dim=1)
        in_place = _uniforms_from_words_in_place(*(word.clone() for word in words), dtype)
        assert pure.dtype == in_place.dtype == dtype
        torch.testing.assert_close(pure, in_place, rtol=0, atol=0)


@pytest.mark.parametrize("small", [True, False])
def test_every_layout_of_the_uniforms_is_the_same_function(monkeypatch, small):
    # Four forms make the same numbers in different layouts: the torch operations block-major
    # (uniform-major columns; allocating below _IN_PLACE_MIN_BLOCKS, in place above), numba's loop
    # (uniform-major rows of its output), and the chain-major form traced under torch.compile. The
    # traced branch is run eagerly here (is_compiling patched), which checks its integer operations
    # without the minute of a compilation; the compiled results themselves are checked in the slow
    # test below and by the benchmark's fused step.
    num_chains = 100 if small else twin._IN_PLACE_MIN_BLOCKS + 5
    chains = np.arange(num_chains) * 7919 + 2**40
    chain_index = torch.tensor(chains)
    for num_uniforms, dtype in ((5, torch.float64), (2, torch.float32), (1, torch.float64)):
        expected = reference.counter_uniforms(123, chains, 77, num_uniforms)
        if dtype == torch.float32:
            expected = np.minimum(expected.astype(np.float32), 1 - 2**-24)
        forms = {"torch operations": twin._uniforms(123, chain_index, 77, num_uniforms, dtype, numba=False)}
        if twin.numba_kernel_available():
            forms["numba"] = twin._uniforms(123, chain_index, 77, num_uniforms, dtype, numba=True)
        for name, eager in forms.items():
            # uniform-major: each uniform's column is contiguous over the chains
            assert eager.shape == (num_chains, num_uniforms) and eager.stride(0) == 1, name
            np.testing.assert_array_equal(eager.numpy(), expected, err_msg=name)
        with monkeypatch.context() as patch:
            patch.setattr(torch.compiler, "is_compiling", lambda: True)
            traced = twin._uniforms(123, chain_index, 77, num_uniforms, dtype)
        np.testing.assert_array_equal(traced.numpy(), expected)


def test_numba_loop_and_torch_operations_give_the_same_bits():
    # numba's loop (the CPU default where numba is installed) against the torch operations and the
    # NumPy reference: edge chains (the high word), edge steps, odd and even widths, no uniforms, one
    # chain and none, a step per chain (the broadcast kernel), and the generator's methods.
    pytest.importorskip("numba", reason="numba is the optional extra textsampling[fast]")
    chains = np.concatenate([np.arange(37), [2**32 - 1, 2**32, 2**40 + 3, 2**62 - 1]])
    for seed in (0, 2**32 + 7, 2**64 - 1):
        for step in (0, 12345, 2**32 - 1):
            for num_uniforms in (0, 1, 2, 3, 8):
                expected = reference.counter_uniforms(seed, chains, step, num_uniforms)
                for dtype in (torch.float64, torch.float32):
                    want = expected if dtype == torch.float64 else np.minimum(expected.astype(np.float32), 1 - 2**-24)
                    for numba in (True, False):
                        got = twin.counter_uniforms(seed, torch.tensor(chains), step, num_uniforms, dtype, numba=numba)
                        assert got.shape == want.shape and got.dtype == dtype
                        np.testing.assert_array_equal(got.numpy(), want, err_msg=f"numba={numba}")
    for numba in (True, False):
        # no chains, one chain
        assert twin.CounterGenerator(5, torch.arange(0), numba=numba).uniforms(3, 4).shape == (0, 4)
        np.testing.assert_array_equal(
            twin.CounterGenerator(5, torch.tensor([2**40]), numba=numba).uniforms(3, 3, torch.float64).numpy(),
            reference.counter_uniforms(5, np.array([2**40]), 3, 3),
        )
        # a step per chain: (chains, 1) x (1, steps), through the function and the generator
        steps = np.arange(2**32 - 6, 2**32)
        expected = reference.counter_uniforms(9, chains[:, None], steps[None, :], 5)
        for dtype in (torch.float64, torch.float32):
            want = expected if dtype == torch.float64 else np.minimum(expected.astype(np.float32), 1 - 2**-24)
            got = twin.counter_uniforms(
                9, torch.tensor(chains)[:, None], torch.tensor(steps)[None, :], 5, dtype, numba=numba
            )
            np.testing.assert_array_equal(got.numpy(), want)
        generator = twin.CounterGenerator(9, torch.tensor(chains), numba=numba)
        np.testing.assert_array_equal(generator.uniforms_for_steps(2**32 - 6, 6, 5, torch.float64).numpy(), expected)
        # the choice travels with the generator
        assert generator.to("cpu").numba is numba
        assert twin.CounterGenerator.from_numpy(reference.CounterGenerator(9, chains), numba=numba).numba is numba
        step_tensor = torch.tensor(12345)  # a 0-d tensor step goes through counter_uniforms
        np.testing.assert_array_equal(
            generator.uniforms(step_tensor, 3, torch.float64).numpy(), reference.counter_uniforms(9, chains, 12345, 3)
        )
        # a chain_index that is a strided view
        strided = torch.tensor(chains)[::2]
        np.testing.assert_array_equal(
            twin.counter_uniforms(9, strided, 4, 2, torch.float64, numba=numba).numpy(),
            reference.counter_uniforms(9, chains[::2], 4, 2),
        )


@pytest.mark.parametrize("numba", [True, False])
def test_every_shape_of_chains_and_steps(numba):
    # An int or 0-d chain, chains of any shape with an int step or a broadcast step, no chains, int32
    # indices: numba's loop flattens them as the torch operations broadcast them.
    if numba:
        pytest.importorskip("numba", reason="numba is the optional extra textsampling[fast]")
    grid = np.arange(12).reshape(3, 4) * 1_000_003 + 2**33
    cases = [
        (5, 3),
        (np.array(5), 3),
        (grid, 3),
        (grid, np.arange(4) + 2**32 - 4),
        (grid[:, :1], np.arange(4)),
        (np.zeros((0, 3), dtype=np.int64), 3),
    ]
    for chains, steps in cases:
        expected = reference.counter_uniforms(17, chains, steps, 3)
        as_tensor = (lambda value: value) if isinstance(chains, int) else torch.tensor
        step_argument = steps if isinstance(steps, int) else torch.tensor(steps)
        got = twin.counter_uniforms(17, as_tensor(chains), step_argument, 3, torch.float64, numba=numba)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got.numpy(), expected)
    int32 = twin.counter_uniforms(
        17, torch.arange(6, dtype=torch.int32), torch.tensor(9, dtype=torch.int32), 2, numba=numba
    )
    torch.testing.assert_close(int32, twin.counter_uniforms(17, torch.arange(6), 9, 2, numba=numba), rtol=0, atol=0)
    # CPU chains whatever torch's default device (numba's output is made on the CPU)
    with torch.device("meta"):
        got = twin.counter_uniforms(17, torch.arange(6, device="cpu"), 9, 2, torch.float64, numba=numba)
    np.testing.assert_array_equal(got.numpy(), reference.counter_uniforms(17, np.arange(6), 9, 2))


def test_a_broken_numba_falls_back_with_a_warning(monkeypatch):
    # numba installed but its loop cannot be loaded (numba raises more than ImportError): the torch
    # operations serve, a warning says why, and numba=True repeats the reason.
    import sys

    import textsampling.torch

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "textsampling.torch._philox_numba":
                raise RuntimeError("cannot cache function 'philox_block': no locator available")
            return None

    monkeypatch.setitem(twin._numba, "module", None)
    monkeypatch.setitem(twin._numba, "failed", None)
    monkeypatch.delitem(sys.modules, "textsampling.torch._philox_numba", raising=False)
    monkeypatch.delattr(textsampling.torch, "_philox_numba", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken()] + sys.meta_path)
    with pytest.warns(UserWarning, match="could not be loaded .RuntimeError: cannot cache.*torch operations"):
        got = twin.counter_uniforms(3, torch.arange(5), 1, 2, torch.float64)
    np.testing.assert_array_equal(got.numpy(), reference.counter_uniforms(3, np.arange(5), 1, 2))
    with pytest.raises(ValueError, match="numba=True but numba cannot be imported .RuntimeError: cannot cache"):
        twin.CounterGenerator(3, torch.arange(5), numba=True)


def test_numba_without_a_writable_cache_compiles_in_the_process(tmp_path):
    # Where numba finds no place to write its cache (a read-only site-packages and no writable home),
    # the loop is compiled without the disk cache: the same numbers, not an error.
    pytest.importorskip("numba", reason="numba is the optional extra textsampling[fast]")
    import subprocess
    import sys

    script = (
        "import numba.core.caching, numpy as np, torch, warnings\n"
        "numba.core.caching.CacheImpl._locator_classes = []  # no writable cache location anywhere\n"
        "try:\n"
        "    numba.njit(cache=True)(lambda: 0)\n"
        "except RuntimeError:\n"
        "    pass  # as where numba finds no writable place\n"
        "else:\n"
        "    raise SystemExit('the patch no longer takes the cache away: this test checks nothing')\n"
        "warnings.simplefilter('error')\n"
        "from textsampling import randomness as reference\n"
        "from textsampling.torch import randomness as twin\n"
        "got = twin.counter_uniforms(3, torch.arange(5), 1, 2, torch.float64, numba=True)\n"
        "assert np.array_equal(got.numpy(), reference.counter_uniforms(3, np.arange(5), 1, 2))\n"
        "print('same numbers')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "same numbers" in result.stdout, result.stderr[-2000:]


def test_numba_is_installed_where_the_suite_runs_in_ci():
    # `make test` installs the `fast` extra: in CI the numba tests must run, not skip (an ImportError from
    # a broken install would otherwise turn them all into skips and the torch operations into the default).
    if os.environ.get("CI") != "true":
        pytest.skip("outside CI numba is optional (the extra textsampling[fast])")
    assert twin.numba_kernel_available(), twin._numba["failed"]
    # and the MH step's decision loop (tests/test_twin_mh_numba.py skips as a whole without numba)
    from textsampling.torch import metropolis_hastings

    assert metropolis_hastings.numba_kernel_available(), metropolis_hastings._numba["failed"]


def test_the_default_uses_numba_where_it_is_installed(monkeypatch):
    # numba=None: numba's loop on the CPU when it can be imported, the torch operations when it cannot
    # (the same numbers), and numba=True says what is missing.
    pytest.importorskip("numba", reason="numba is the optional extra textsampling[fast]")
    assert twin.numba_kernel_available()
    calls = []
    kernels = twin._numba["module"]

    class Spy:
        def one_step_uniforms_into(self, *arguments):
            calls.append("one step")
            return kernels.one_step_uniforms_into(*arguments)

        def counter_uniforms_into(self, *arguments):
            calls.append("per element")
            return kernels.counter_uniforms_into(*arguments)

    chains = torch.arange(20)
    with monkeypatch.context() as patch:
        patch.setitem(twin._numba, "module", Spy())
        default = twin.CounterGenerator(1, chains).uniforms(7, 3)
        twin.CounterGenerator(1, chains).uniforms_for_steps(7, 2, 3)
        twin.CounterGenerator(1, chains, numba=False).uniforms(7, 3)
    assert calls == ["one step", "per element"]
    # as if numba were not installed
    with monkeypatch.context() as patch:
        patch.setitem(twin._numba, "module", None)
        patch.setitem(twin._numba, "failed", "ModuleNotFoundError: No module named 'numba'")
        assert not twin.numba_kernel_available()
        torch.testing.assert_close(twin.CounterGenerator(1, chains).uniforms(7, 3), default, rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"numba=True.*No module named 'numba'.*textsampling\[fast\]"):
            twin.CounterGenerator(1, chains, numba=True)
        with pytest.raises(ValueError, match="numba=True"):
            twin.counter_uniforms(1, chains, 7, 3, numba=True)


def test_a_torch_generator_fills_the_uniforms_column_by_column():
    # The layout draw_uniforms documents: torch.rand((k,) + batch) moved to the last axis.
    tiny = torch.finfo(torch.float64).tiny
    got = twin.draw_uniforms(torch.Generator().manual_seed(5), 0, 3, num_chains=7, dtype=torch.float64)
    expected = torch.rand((3, 7), generator=torch.Generator().manual_seed(5), dtype=torch.float64).clamp_(min=tiny)
    assert torch.equal(got, expected.T) and got.stride(0) == 1
    got = twin.draw_uniforms_for_steps(torch.Generator().manual_seed(5), 0, 4, 3, num_chains=7, dtype=torch.float64)
    expected = torch.rand((3, 7, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64).clamp_(min=tiny)
    assert torch.equal(got, expected.movedim(0, -1))


@pytest.mark.slow  # compiles two kernels: seconds with a warm Inductor cache, up to a minute cold on 2 busy cores
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_generator_is_bit_identical_and_batch_independent(device):
    chains = np.concatenate([np.arange(300), [2**32 - 1, 2**32, 2**40 + 3, 2**62 - 1]])
    big = twin.CounterGenerator(2**64 - 1, torch.tensor(chains, device=device), compiled=True)
    # other batches of the same chains: a few, one alone (the eager path serves a single chain)
    parts = [torch.tensor(chains[-7:], device=device), torch.tensor(chains[4321 % 300 : 4321 % 300 + 1], device=device)]
    # two kernels: float64 (the exact values) with three blocks, the last half used; float32 with one block
    for num_uniforms, dtype in ((5, torch.float64), (2, torch.float32)):
        for step in (0, 12345, 2**32 - 1):
            expected = reference.counter_uniforms(2**64 - 1, chains, step, num_uniforms)
            if dtype == torch.float32:
                expected = np.minimum(expected.astype(np.float32), 1 - 2**-24)
            got = big.uniforms(step, num_uniforms, dtype=dtype)
            np.testing.assert_array_equal(got.cpu().numpy(), expected)
            for part in parts:
                alone = twin.CounterGenerator(2**64 - 1, part, compiled=True).uniforms(step, num_uniforms, dtype)
                rows = np.flatnonzero(np.isin(chains, part.cpu().numpy()))
                torch.testing.assert_close(alone, got[rows], rtol=0, atol=0)
    # consecutive steps (served from a window of steps made ahead), and a step asked for twice
    eager = twin.CounterGenerator(2**64 - 1, torch.tensor(chains, device=device))
    for step in [100, 101, 102, 103, 103, 50, 51] + list(range(104, 200)):
        torch.testing.assert_close(big.uniforms(step, 2), eager.uniforms(step, 2), rtol=0, atol=0)
    # the generator's other methods keep the option and the numbers
    moved = big.to(device)
    assert moved.compiled and torch.equal(moved.uniforms(7, 2), big.uniforms(7, 2))
    assert device not in twin._compiled["failed"]
    torch.testing.assert_close(
        twin.draw_uniforms_for_steps(big, 3, 4, 5, dtype=torch.float64),
        twin.draw_uniforms_for_steps(eager, 3, 4, 5, dtype=torch.float64),
        rtol=0,
        atol=0,
    )


def test_compiled_generator_falls_back_to_eager_with_a_warning(monkeypatch):
    class CompilationFailed(torch._dynamo.exc.TorchDynamoException):
        pass

    def fails(*arguments):
        raise CompilationFailed("no C++ compiler")

    # as if torch.compile had been called and its first call failed; restored after the test
    monkeypatch.setitem(twin._compiled, "function", fails)
    monkeypatch.setitem(twin._compiled, "failed", {})
    chains = torch.arange(50)
    compiled = twin.CounterGenerator(4, chains, compiled=True)
    with pytest.warns(UserWarning, match="no C.. compiler.*eager"):
        got = compiled.uniforms(9, 3, dtype=torch.float64)
    np.testing.assert_array_equal(got.numpy(), reference.counter_uniforms(4, np.arange(50), 9, 3))
    # recorded for the CPU only: a failed C++ compilation does not send CUDA to the eager path
    assert list(twin._compiled["failed"]) == ["cpu"] and twin._compiled["failed"]["cpu"].startswith("CompilationFailed")
    torch.testing.assert_close(compiled.uniforms(10, 3), twin.CounterGenerator(4, chains).uniforms(10, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_steps_broadcast_against_chains(device):
    chains, steps = np.arange(7)[:, None], np.arange(100, 105)[None, :]
    expected = reference.counter_uniforms(3, chains, steps, 3)  # (7, 5, 3)
    got = twin.counter_uniforms(
        3, torch.tensor(chains, device=device), torch.tensor(steps, device=device), 3, dtype=torch.float64
    )
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    generator = twin.CounterGenerator(3, torch.arange(7, device=device))
    for_steps = twin.draw_uniforms_for_steps(generator, 100, 5, 3, dtype=torch.float64)
    np.testing.assert_array_equal(for_steps.cpu().numpy(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_chains_alone_equal_the_same_chains_in_a_big_batch(device):
    # 40,000 chains x 2 blocks: the eager path's in-place rounds; 10 chains, or one: its allocating form
    big = twin.CounterGenerator(11, torch.arange(40_000, device=device))
    alone = twin.CounterGenerator(11, torch.arange(10, device=device))
    for step in (0, 1, 99):
        batch = twin.draw_uniforms(big, step, 4, dtype=torch.float64)
        assert batch.shape == (40_000, 4)
        np.testing.assert_array_equal(batch.cpu().numpy(), reference.counter_uniforms(11, np.arange(40_000), step, 4))
        torch.testing.assert_close(twin.draw_uniforms(alone, step, 4, dtype=torch.float64), batch[:10], rtol=0, atol=0)
        # one chain picked from the middle of the batch, alone
        single = twin.CounterGenerator(11, torch.tensor([4321], device=device))
        torch.testing.assert_close(single.uniforms(step, 4, dtype=torch.float64)[0], batch[4321], rtol=0, atol=0)


def test_counter_generator_twins_the_numpy_one():
    numpy_generator = reference.CounterGenerator(9, np.arange(5))
    torch_generator = twin.CounterGenerator.from_numpy(numpy_generator)
    np.testing.assert_array_equal(
        torch_generator.uniforms(4, 3, dtype=torch.float64).numpy(), numpy_generator.uniforms(4, 3)
    )
    assert torch_generator.num_chains == 5 and torch_generator.device == torch.device("cpu")


def test_float32_stays_below_one():
    # Found by a one-off search: seed 0, chain 24962728, step 0 gives a second uniform above
    # 1 - 2**-25, which rounds to exactly 1.0 in float32. The clamp (torch's operations) or the cap
    # before rounding (numba's loops) must keep it below 1.
    float64 = reference.counter_uniforms(0, 24962728, 0, 2)[1]
    assert float64 > 1 - 2**-25 and np.float32(float64) == 1.0
    for numba in (None, False):  # numba's loops where installed (one step, a step per chain), torch's operations
        for step in (0, torch.tensor([0])):
            value = twin.counter_uniforms(0, torch.tensor([24962728]), step, 2, numba=numba)[0, 1]
            assert value.item() == twin.largest_below_one(torch.float32) and value.item() < 1.0
    # and the smallest possible uniform, 2**-53, is a positive float32
    assert np.float32(0.5 / 2**52) > 0


def test_torch_generator_path_is_open_interval_and_seeded_explicitly():
    generator = torch.Generator().manual_seed(0)
    uniforms = twin.draw_uniforms(generator, 0, 3, num_chains=1000)
    assert uniforms.shape == (1000, 3) and uniforms.dtype == torch.float32
    assert bool((uniforms > 0).all()) and bool((uniforms < 1).all())
    again = twin.draw_uniforms(torch.Generator().manual_seed(0), 0, 3, num_chains=1000)
    torch.testing.assert_close(uniforms, again, rtol=0, atol=0)


def test_bad_input_is_refused_with_the_argument_named():
    chains = torch.arange(4)
    with pytest.raises(TypeError, match="rng"):
        twin.draw_uniforms(np.random.default_rng(0), 0, 2, num_chains=4)
    with pytest.raises(TypeError, match="dtype"):
        twin.counter_uniforms(0, chains, 0, 2, dtype=torch.float16)
    with pytest.raises(TypeError, match="seed"):
        twin.counter_uniforms(1.5, chains, 0, 2)
    with pytest.raises(ValueError, match="chain_index"):
        twin.counter_uniforms(0, torch.tensor([-1]), 0, 2)
    with pytest.raises(TypeError, match="chain_index"):
        twin.counter_uniforms(0, torch.tensor([0.5]), 0, 2)
    with pytest.raises(ValueError, match="step"):
        twin.counter_uniforms(0, chains, 2**32, 2)
    with pytest.raises(ValueError, match="num_uniforms"):
        twin.counter_uniforms(0, chains, 0, -1)
    with pytest.raises(ValueError, match="num_chains"):
        twin.draw_uniforms(twin.CounterGenerator(0, chains), 0, 2, num_chains=5)
    with pytest.raises(ValueError, match="num_chains"):
        twin.draw_uniforms(torch.Generator(), 0, 2)
    # a generator on the CPU for chains on a CUDA device (checked without needing one)
    with pytest.raises(ValueError, match="rng"):
        twin.draw_uniforms(torch.Generator(), 0, 2, num_chains=4, device="cuda")
    with pytest.raises(ValueError, match="rng"):
        twin.draw_uniforms(twin.CounterGenerator(0, chains), 0, 2, device="cuda")
    with pytest.raises(ValueError, match="chain_index"):
        twin.counter_uniforms(0, chains, 0, 2, device="cuda")
    with pytest.raises(ValueError, match="chain_index"):
        twin.CounterGenerator(0, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="compiled"):
        twin.CounterGenerator(0, chains, compiled=1)
    with pytest.raises(TypeError, match="numba"):
        twin.CounterGenerator(0, chains, numba="yes")
    with pytest.raises(TypeError, match="numba"):
        twin.counter_uniforms(0, chains, 0, 2, numba=1)
    if twin.numba_kernel_available():
        with pytest.raises(ValueError, match="compiled=True.*numba=True"):
            twin.CounterGenerator(0, chains, compiled=True, numba=True)
        with pytest.raises(ValueError, match="numba=True.*CPU.*meta"):
            twin.CounterGenerator(0, chains.to("meta"), numba=True)
    with pytest.raises(ValueError, match="first_step"):
        twin.CounterGenerator(0, chains).uniforms_for_steps(-1, 2, 2)
    with pytest.raises(ValueError, match="steps"):
        twin.CounterGenerator(0, chains).uniforms_for_steps(2**32 - 1, 2, 2)


# ----------------------------------------------------------------------------- sums that repeat at zero weights
UNIT = 2.0**-23  # the ulp of 1 in float32


def hillis_steele_cumsum(weights, dim=-1, out=None):
    """Cumulative sums by a parallel (Hillis-Steele) scan, written out: x_k += x_{k - s} for s = 1, 2, 4, ...

    A stand-in for a GPU's scan: neighbouring k get their additions grouped differently.
    """
    assert dim == -1 and out is None
    sums, shift = weights.clone(), 1
    while shift < sums.shape[-1]:
        sums = torch.cat([sums[..., :shift], sums[..., shift:] + sums[..., :-shift]], dim=-1)
        shift *= 2
    return sums


# Weights 0.4 u, 0.4 u, 1, 0, 1 (float32): the scan's C_3 = 1 + (0.4 u + 0.4 u) = 1 + u, but its
# C_2 = (1 + 0.4 u) + 0.4 u = 1, so the zero weight at 3 gets the interval [1, 1 + u). A sum in order
# gives C_2 = C_3 = 1 + u. The uniform 1/2 puts the threshold at 1/2 * C_4 = 1, inside that interval.
ZERO_INSIDE_LOGITS = [np.log(0.4 * UNIT), np.log(0.4 * UNIT), 0.0, -np.inf, 0.0]


def test_a_parallel_scan_can_give_a_zero_weight_an_interval_which_repeated_sums_take_away():
    weights = torch.exp(torch.tensor(ZERO_INSIDE_LOGITS, dtype=torch.float32))
    scanned = hillis_steele_cumsum(weights)
    threshold = 0.5 * scanned[-1:]
    # the flaw, shown (the test of the test): the scan rises at the zero weight and the search lands there
    assert scanned[3] > scanned[2] and threshold.item() == 1.0
    assert torch.searchsorted(scanned, threshold, right=True).item() == 3 and weights[3] == 0
    repeated = twin._repeat_sums_at_zero_weights(scanned, weights)
    assert repeated[3] == repeated[2] and torch.all(repeated[1:] >= repeated[:-1])
    assert weights[torch.searchsorted(repeated, threshold, right=True).item()] > 0
    # in place, into the buffer given (the decoders' reused buffer), the same sums
    buffer = scanned.clone()
    assert twin._repeat_sums_at_zero_weights(buffer, weights, in_place=True) is buffer and torch.equal(buffer, repeated)
    # and falling: weights 1, 0.4 u, 0.4 u, 0 give the scan C_2 = 1 + u above C_3 = 1
    weights = torch.exp(torch.tensor([0.0, np.log(0.4 * UNIT), np.log(0.4 * UNIT), -np.inf], dtype=torch.float32))
    scanned = hillis_steele_cumsum(weights)
    assert scanned[3] < scanned[2]
    repeated = twin._repeat_sums_at_zero_weights(scanned, weights)
    assert torch.all(repeated[1:] >= repeated[:-1]) and repeated[3] == repeated[2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_repeated_sums_change_no_bit_of_sums_made_in_order(dtype):
    # What lets the CPU skip the repair: on torch.cumsum's sums in order it is the identity, bit for bit,
    # with zero weights leading, inside and trailing, rows without any, and NaN rows.
    generator = torch.Generator().manual_seed(11)
    integer = torch.int32 if dtype == torch.float32 else torch.int64
    for num_categories in (1, 2, 3, 8, 64, 300):
        logits = torch.randn((500, num_categories), generator=generator, dtype=dtype) * 5
        zero = torch.rand((500, num_categories), generator=generator) < 0.3
        zero[:100, 0] = True  # leading zeros
        zero[100:200, -1] = True  # trailing zeros
        zero[200:220] = False  # rows without any
        logits[zero] = -torch.inf
        logits[220:225, num_categories // 2] = torch.nan
        logits[225:230, 0] = torch.inf
        weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))  # (500, K), the rule's weights
        in_order = torch.cumsum(weights, dim=-1)
        repeated = twin._repeat_sums_at_zero_weights(in_order, weights)
        assert torch.equal(repeated.view(integer), in_order.view(integer)), num_categories


def test_cumulative_weights_writes_into_the_buffer_given_and_refuses_integer_weights(monkeypatch):
    weights = torch.exp(torch.tensor(ZERO_INSIDE_LOGITS, dtype=torch.float32))
    for sequential in (frozenset({"cpu"}), frozenset()):  # the CPU's path, then the repair's
        monkeypatch.setattr(twin, "_SEQUENTIAL_CUMSUM_DEVICES", sequential)
        buffer = torch.full((5,), torch.nan)
        assert twin.cumulative_weights(weights, out=buffer) is buffer
        assert torch.equal(buffer, torch.cumsum(weights, dim=-1))  # sums in order: nothing to repair
    with pytest.raises(TypeError, match="weights must have a floating dtype, got torch.int64"):
        twin.cumulative_weights(torch.tensor([1, 0, 2]))


def test_off_the_cpu_draws_and_ancestors_never_take_a_zero_weight(monkeypatch):
    from textsampling.torch import resampling

    logits = torch.tensor(ZERO_INSIDE_LOGITS, dtype=torch.float32)
    half = torch.tensor([0.5], dtype=torch.float32)
    # With a parallel scan and the CPU's trust in sums made in order, the zero weight is drawn ...
    monkeypatch.setattr(torch, "cumsum", hillis_steele_cumsum)
    assert twin.categorical_from_uniforms(half, logits).item() == 3
    assert resampling.inverse_cdf(half[None, :], logits[None, :]).item() == 3
    # ... and not once the sums repeat at zero weights, as off the CPU.
    monkeypatch.setattr(twin, "_SEQUENTIAL_CUMSUM_DEVICES", frozenset())
    assert logits[twin.categorical_from_uniforms(half, logits)].item() == 0.0
    assert logits[resampling.inverse_cdf(half[None, :], logits[None, :])].item() == 0.0
    assert logits[twin.categorical_from_uniforms(half.expand(3), logits.expand(3, 5))].eq(0.0).all()


def test_repeated_sums_draw_as_sums_in_order_on_the_cpu(monkeypatch):
    # The repair, run on the CPU's sums in order, leaves every draw, total and ancestor as it was.
    generator = torch.Generator().manual_seed(12)
    logits = torch.randn((2000, 40), generator=generator, dtype=torch.float64) * 3
    logits[torch.rand((2000, 40), generator=generator) < 0.4] = -torch.inf
    logits[:, 7] = 0.0  # one state possible in every row
    uniforms = torch.rand(2000, generator=generator, dtype=torch.float64)
    ancestor_uniforms = torch.rand((50, 40), generator=generator, dtype=torch.float64)
    from textsampling.torch import resampling

    expected = [
        twin.inverse_cdf_and_totals(uniforms, logits.clone()),
        twin.inverse_cdf_and_totals(uniforms, logits[0].clone()),
        [resampling.ancestors(ancestor_uniforms, logits[:50], scheme) for scheme in resampling.SCHEMES],
    ]
    monkeypatch.setattr(twin, "_SEQUENTIAL_CUMSUM_DEVICES", frozenset())
    got = [
        twin.inverse_cdf_and_totals(uniforms, logits.clone()),
        twin.inverse_cdf_and_totals(uniforms, logits[0].clone()),
        [resampling.ancestors(ancestor_uniforms, logits[:50], scheme) for scheme in resampling.SCHEMES],
    ]
    for (expected_indices, expected_totals), (got_indices, got_totals) in zip(expected[:2], got[:2]):
        assert torch.equal(got_indices, expected_indices) and torch.equal(got_totals, expected_totals)
    assert all(torch.equal(g, e) for g, e in zip(got[2], expected[2]))
