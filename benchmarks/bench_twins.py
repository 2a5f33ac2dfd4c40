"""Benchmark: chain-steps per second of MH and Gibbs, the package's paths beside plain NumPy and JAX loops.

Prints the tables (``--markdown``: as Markdown, the README's table is pasted from it verbatim). Rows:
sampler x implementation x device; columns: number of chains (1e3 ... 1e7, capped by ``--max-chains``
/ ``--max-cpu-chains`` / ``--max-reference-chains`` and by free memory). Every figure *includes drawing
the random numbers*:

* ``NumPy reference``  — counter uniforms for all chains (vectorised Philox), then the reference ``step``
                         chain by chain (a Python loop, as the reference is written);
* ``NumPy vectorised`` — the ten-line vectorised NumPy sampler below (``numpy_mh_step`` /
                         ``numpy_gibbs_step``), uniforms from ``numpy.random.Generator.random``, float64;
* ``NumPy vectorised, counter`` — the same ten lines fed the per-chain counter uniforms
                         (:func:`textsampling.randomness.counter_uniforms`): reproducible per chain;
* ``torch twin``       — the twin as users call it: ``CounterGenerator.uniforms`` (counter Philox, per-chain
                         reproducible; on the CPU numba's compiled loop where numba is installed, the
                         ``textsampling[fast]`` extra) + ``step`` with its value checks (``validate=True``), float32
                         (on the CPU with numba, MH's checks and decisions are one compiled loop too);
* ``torch twin without numba`` — the same with ``CounterGenerator(..., numba=False)`` and the MH step's
                         decision loop switched off: counter uniforms from about a hundred eager torch
                         operations, decisions from the torch operations (what runs where numba is not
                         installed);
* ``torch twin, compiled uniforms`` — the same counter uniforms from
                         ``CounterGenerator(..., compiled=True)`` (one fused Philox kernel per step,
                         bit-identical) + ``step(validate=False)``: against ``torch fast`` it isolates the
                         price of per-chain reproducibility;
* ``torch fast``       — torch's own generator (``torch.rand``, not per-chain reproducible) +
                         ``step(validate=False)``;
* ``torch fused``      — ``torch.compile`` of counter uniforms + step (per-chain reproducible); reported as
                         failed (with the reason) if compilation fails; checked bit-identical to the twin;
* ``torch twin, compiled step`` — the twin's counter uniforms drawn as the ``torch twin`` row draws them
                         (``CounterGenerator.uniforms``: numba's loop on the CPU where numba is installed)
                         + ``torch.compile`` of ``step(validate=False)`` alone: on the CPU the Philox rounds
                         stay in numba's loop, which is faster there than the C++ that Inductor writes for
                         them; checked bit-identical to the eager twin over its first three steps;
* ``torch, the NumPy lines`` — the ten NumPy lines written in torch operations (``torch_mh_step`` /
                         ``torch_gibbs_step``), ``torch.rand`` uniforms, float32, no checks: the floor of
                         an eager torch step (one dispatch per operation), under every eager torch row;
* ``JAX vmap``         — the same kernel per chain, ``jax.vmap`` over chains inside a jitted
                         ``lax.fori_loop`` over steps, ``jax.random`` uniforms, float32 (skipped, with a
                         printed note, when ``jax`` is not importable).

Measurement: for each (sampler, number of chains) every implementation is built, warmed up and
calibrated to ``--min-time`` seconds per repeat; then ``--repeats`` (>= 5) rounds run the
implementations one after another (interleaved, so load changes hit all alike). A cell is the median
rate with the min-max over the repeats; ratios are of medians from the same run. Printed with the
machine, the thread counts and the load average before and after.

Peak memory per million chains (MB per 1e6 chains = bytes per chain): the bytes of the carried state
plus the peak of the bytes a single step allocates and has not yet freed — for NumPy from
``tracemalloc`` (NumPy reports its buffers to it), for torch on the CPU from the allocator events of
``torch.profiler`` (``profile_memory=True``; per-operator granularity, so a temporary allocated and
freed inside one operator is not seen), for CUDA ``torch.cuda.max_memory_allocated``, for JAX XLA's
buffer assignment of the compiled loop (arguments + outputs + temporaries, ``memory_analysis()``). The
Python loop of the reference is left out (its objects are not comparable). Minor page faults per step
(``getrusage``) are printed for the CPU rows: freshly mapped memory faults once per 4 KiB page, or
once per 2 MiB where it is backed by transparent huge pages (NumPy asks for them for its large arrays;
torch's CPU allocator does with ``THP_MEM_ALLOC_ENABLE=1`` in the environment, which the
``textsampling`` console script sets; the table's header says whether it was set).

Targets: MH on a 1,000-state categorical target with the uniform proposal; random-scan Gibbs on a
fixed-length bigram (V = 8, L = 8, the exact masked conditional). Run::

    make bench                                                      # what the README's table came from
    .venv/bin/python benchmarks/bench_twins.py --max-chains 1e7     # on a GPU machine

With ``$OUT`` set, the results are also written to ``$OUT/bench_twins.json`` (and ``bench_twins.md``),
rewritten after every batch size: a run stopped early leaves what it measured (``"complete": false``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_description  # noqa: E402
from textsampling import randomness as numpy_randomness  # noqa: E402
from textsampling import targets  # noqa: E402
from textsampling.reference import gibbs as reference_gibbs  # noqa: E402
from textsampling.reference import metropolis_hastings as reference_mh  # noqa: E402
from textsampling.reference import proposals  # noqa: E402
from textsampling.torch import gibbs, metropolis_hastings  # noqa: E402
from textsampling.torch.randomness import CounterGenerator, _uniforms, draw_uniforms, numba_kernel_available  # noqa: E402
from textsampling.torch.twins import twin_of  # noqa: E402

SEED = 2021
SIZES = [10**3, 10**4, 10**5, 10**6, 10**7]
NUM_CATEGORIES = 1000
VOCAB_SIZE, LENGTH = 8, 8
BYTES_PER_CHAIN = 400  # generous: states, uniforms and Philox temporaries (int64) of one step
FUSED_MATCHES = {}  # (sampler, device, num_chains) -> fused step == eager twin step, bit for bit
COMPILED_STEP_MATCHES = {}  # (sampler, device, num_chains) -> compiled step == eager twin, three steps, bit for bit
LABELS = {
    "reference": "NumPy reference (one chain at a time)",
    "numpy": "NumPy vectorised",
    "numpy-counter": "NumPy vectorised, counter uniforms",
    "twin": "torch twin (counter uniforms)",
    "twin-ops": "torch twin without numba (torch operations only)",
    "twin-compiled": "torch twin, compiled counter uniforms",
    "fast": "torch fast (torch.Generator)",
    "fused": "torch fused (torch.compile, counter uniforms)",
    "compiled-step": "torch twin, compiled step (torch.compile)",
    "torch-lines": "torch, the NumPy lines in torch operations",
    "jax": "JAX vmap + fori_loop",
}
#: The implementations that run on every torch device (the others on the CPU).
TORCH_IMPLEMENTATIONS = ("twin", "twin-ops", "twin-compiled", "fast", "fused", "compiled-step", "torch-lines")
#: Ratios of medians printed under the table: (numerator, denominator), both on the same device.
RATIOS = [
    ("twin", "fast"),
    ("twin-ops", "fast"),
    ("twin-compiled", "fast"),
    ("twin-compiled", "numpy"),
    ("twin", "numpy-counter"),
    ("twin", "numpy"),
    ("fast", "numpy"),
    ("fused", "numpy"),
    ("compiled-step", "numpy"),
    ("compiled-step", "twin"),
    ("torch-lines", "numpy"),
    ("fast", "torch-lines"),
    ("jax", "numpy"),
    ("twin", "jax"),
    ("fast", "jax"),
]




def make_problems():
    rng = np.random.default_rng(0)
    categorical = targets.Categorical(rng.normal(size=NUM_CATEGORIES) * 2.0)
    bigram = targets.FixedLengthBigram(
        rng.normal(size=VOCAB_SIZE), rng.normal(size=(VOCAB_SIZE, VOCAB_SIZE + 1)), LENGTH
    )
    return categorical, proposals.UniformCategoricalProposal(NUM_CATEGORIES), bigram


def synchronize(device):
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the ten-line NumPy samplers
def numpy_mh_step(uniforms, x, log_prob, logits):
    """One MH step of every chain on the categorical, uniform proposal: ``uniforms`` (N, 2), ``x`` (N,)."""
    proposal = np.minimum((uniforms[:, 0] * len(logits)).astype(np.int64), len(logits) - 1)  # (N,)
    log_prob_proposal = logits[proposal]  # (N,)
    accepted = np.log(uniforms[:, 1]) < np.minimum(log_prob_proposal - log_prob, 0.0)  # (N,)
    return np.where(accepted, proposal, x), np.where(accepted, log_prob_proposal, log_prob)


def numpy_gibbs_step(uniforms, x, log_initial, log_transition):
    """One random-scan Gibbs step of every chain on the fixed-length bigram: ``uniforms`` (N, 2), ``x`` (N, L)."""
    num_chains, length = x.shape
    vocab_size = log_initial.shape[0]
    rows = np.arange(num_chains)
    position = np.minimum((uniforms[:, 0] * length).astype(np.int64), length - 1)  # (N,)
    previous, following = x[rows, np.maximum(position - 1, 0)], x[rows, np.minimum(position + 1, length - 1)]
    left = np.where((position == 0)[:, None], log_initial, log_transition[previous, :vocab_size])  # (N, V)
    right = np.where((position == length - 1)[:, None], log_transition[:, vocab_size], log_transition[:, following].T)
    weights = np.exp((left + right) - (left + right).max(axis=1, keepdims=True))  # (N, V)
    cumulative = np.cumsum(weights, axis=1)  # (N, V): the inverse-CDF rule, first k with C_k > u C_{V-1}
    token = np.minimum((cumulative <= (uniforms[:, 1] * cumulative[:, -1])[:, None]).sum(axis=1), vocab_size - 1)
    new_x = x.copy()
    new_x[rows, position] = token
    return new_x, token


# ----------------------------------------------------------------------------- the same lines in torch
# What eager torch costs at the least: the ten-line samplers above, operation for operation, without the
# package's checks, contract or counter generator. Their fixed cost per step (one dispatch per operation)
# is the floor under every eager torch row of the table.
def torch_mh_step(uniforms, x, log_prob, logits):
    """:func:`numpy_mh_step` in torch operations: ``uniforms`` (N, 2), ``x`` (N,), ``log_prob`` (N,)."""
    num_categories = logits.shape[0]
    proposal = (uniforms[:, 0] * num_categories).to(torch.int64).clamp_(max=num_categories - 1)  # (N,)
    log_prob_proposal = logits[proposal]  # (N,)
    accepted = torch.log(uniforms[:, 1]) < (log_prob_proposal - log_prob).clamp_(max=0.0)  # (N,)
    return torch.where(accepted, proposal, x), torch.where(accepted, log_prob_proposal, log_prob)


def torch_gibbs_step(uniforms, x, log_initial, log_transition):
    """:func:`numpy_gibbs_step` in torch operations: ``uniforms`` (N, 2), ``x`` (N, L)."""
    num_chains, length = x.shape
    vocab_size = log_initial.shape[0]
    rows = torch.arange(num_chains, device=x.device)
    position = (uniforms[:, 0] * length).to(torch.int64).clamp_(max=length - 1)  # (N,)
    previous, following = x[rows, (position - 1).clamp_(min=0)], x[rows, (position + 1).clamp_(max=length - 1)]
    left = torch.where((position == 0)[:, None], log_initial, log_transition[previous, :vocab_size])  # (N, V)
    right = torch.where(
        (position == length - 1)[:, None], log_transition[:, vocab_size], log_transition[:, following].T
    )  # (N, V)
    total = left + right
    weights = torch.exp(total - total.amax(dim=1, keepdim=True))  # (N, V)
    cumulative = torch.cumsum(weights, dim=1)  # (N, V): the inverse-CDF rule, first k with C_k > u C_{V-1}
    token = (cumulative <= (uniforms[:, 1] * cumulative[:, -1])[:, None]).sum(dim=1).clamp_(max=vocab_size - 1)
    new_x = x.clone()
    new_x[rows, position] = token
    return new_x, token


# ----------------------------------------------------------------------------- runners
class Runner:
    """``run(num_steps)`` advances every chain; ``peak_bytes()`` measures one step's memory (see the docstring)."""

    device = None
    memory_note = ""

    def run(self, num_steps: int) -> None:
        raise NotImplementedError

    def peak_bytes(self):
        return None


class NumpyRunner(Runner):
    memory_note = "tracemalloc"

    def __init__(self, sampler, num_chains, problems, counter: bool):
        categorical, _, bigram = problems
        self.sampler, self.num_chains, self.counter = sampler, num_chains, counter
        self.chains = np.arange(num_chains)
        self.generator = np.random.default_rng(SEED)
        self.step_index = 0
        if sampler == "MH":
            self.logits = np.asarray(categorical.logits, dtype=np.float64)
            x = self.chains % NUM_CATEGORIES
            self.state = (x, self.logits[x])
        else:
            self.log_initial = np.asarray(bigram.log_initial, dtype=np.float64)
            self.log_transition = np.asarray(bigram.log_transition, dtype=np.float64)
            self.state = (np.zeros((num_chains, LENGTH), dtype=np.int64),)

    def one_step(self):
        if self.counter:
            uniforms = numpy_randomness.counter_uniforms(SEED, self.chains, self.step_index, 2)  # (N, 2)
        else:
            uniforms = self.generator.random((self.num_chains, 2))  # (N, 2) in [0, 1)
            np.maximum(uniforms, np.finfo(np.float64).tiny, out=uniforms)  # an exact 0 would make log(u) = -inf
        if self.sampler == "MH":
            self.state = numpy_mh_step(uniforms, *self.state, self.logits)
        else:
            self.state = numpy_gibbs_step(uniforms, self.state[0], self.log_initial, self.log_transition)[:1]
        self.step_index += 1

    def run(self, num_steps):
        for _ in range(num_steps):
            self.one_step()

    def peak_bytes(self):
        carried = sum(a.nbytes for a in self.state)
        tracemalloc.start()
        try:
            self.one_step()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return carried + peak


class ReferenceRunner(Runner):
    def __init__(self, sampler, num_chains, problems):
        categorical, proposal, bigram = problems
        self.sampler, self.chains = sampler, np.arange(num_chains)
        self.problems = problems
        if sampler == "MH":
            self.states = [reference_mh.init(c % NUM_CATEGORIES, categorical.log_prob) for c in self.chains]
            self.width = reference_mh.num_uniforms(proposal)
        else:
            self.states = [reference_gibbs.GibbsState(np.zeros(LENGTH, dtype=np.int64)) for _ in self.chains]
            self.width = reference_gibbs.num_uniforms("random", LENGTH)
        self.step_index = 0

    def run(self, num_steps):
        categorical, proposal, bigram = self.problems
        for _ in range(num_steps):
            uniforms = numpy_randomness.counter_uniforms(SEED, self.chains, self.step_index, self.width)  # (N, k)
            for c in range(len(self.chains)):
                if self.sampler == "MH":
                    self.states[c], _ = reference_mh.step(uniforms[c], self.states[c], categorical.log_prob, proposal)
                else:
                    self.states[c], _ = reference_gibbs.step(uniforms[c], self.states[c], bigram.conditional_log_probs)
            self.step_index += 1


_TRANSITIONS = {}
_FUSED = {}


def transitions(sampler, problems, device, dtype):
    """(uniforms per step, transition(uniforms, state, validate), initial_state(chain_index)), cached per device.

    Cached so that the compiled fused step sees the same objects for every batch size (no recompilation).
    """
    key = (sampler, str(device), dtype)
    if key in _TRANSITIONS:
        return _TRANSITIONS[key]
    categorical, proposal, bigram = problems
    if sampler == "MH":
        target, twin_proposal = twin_of(categorical, dtype, device), twin_of(proposal, dtype, device)

        def transition(uniforms, current, validate):
            return metropolis_hastings.step(uniforms, current, target.log_prob, twin_proposal, validate=validate)[0]

        def initial_state(chain_index):
            return metropolis_hastings.init(chain_index % NUM_CATEGORIES, target.log_prob)

        width = metropolis_hastings.num_uniforms(twin_proposal)
    else:
        target = twin_of(bigram, dtype, device)

        def transition(uniforms, current, validate):
            return gibbs.step(uniforms, current, target.conditional_log_probs, validate=validate)[0]

        def initial_state(chain_index):
            return gibbs.init(torch.zeros((chain_index.shape[0], LENGTH), dtype=torch.int64, device=device), None)

        width = gibbs.num_uniforms("random", LENGTH)
    _TRANSITIONS[key] = (width, transition, initial_state)
    return _TRANSITIONS[key]


def fused_step(sampler, problems, device, dtype):
    """``torch.compile`` of counter uniforms + transition, one per (sampler, device): ``(compiled, eager)``."""
    key = (sampler, str(device), dtype)
    if key not in _FUSED:
        width, transition, _ = transitions(sampler, problems, device, dtype)

        def counter_step(step_tensor, chain_index, current):
            # counter_uniforms without its argument checks, whose value checks would synchronise (and
            # break the graph); the eager twin row goes through the public CounterGenerator.uniforms.
            uniforms = _uniforms(SEED, chain_index, step_tensor, width, dtype)
            return transition(uniforms, current, False)

        # dynamic=None: the second batch size triggers one recompilation with symbolic sizes, then no more.
        _FUSED[key] = (torch.compile(counter_step), counter_step)
    return _FUSED[key]


_COMPILED_STEPS = {}


def compiled_step(sampler, problems, device, dtype):
    """``torch.compile`` of the transition without value checks, one per (sampler, device)."""
    key = (sampler, str(device), dtype)
    if key not in _COMPILED_STEPS:
        _, transition, _ = transitions(sampler, problems, device, dtype)

        def unchecked_step(uniforms, current):
            return transition(uniforms, current, False)

        # dynamic=None, as for the fused step: one recompilation with symbolic sizes at the second batch size.
        _COMPILED_STEPS[key] = torch.compile(unchecked_step)
    return _COMPILED_STEPS[key]


def same_states(first, second) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


class TorchRunner(Runner):
    def __init__(self, sampler, mode, num_chains, problems, device, dtype=torch.float32):
        self.device, self.mode = device, mode
        self.memory_note = "cuda max_memory_allocated" if device.type == "cuda" else "torch.profiler allocator events"
        chain_index = torch.arange(num_chains, device=device)
        rng = CounterGenerator(
            SEED, chain_index, compiled=mode == "twin-compiled", numba=False if mode == "twin-ops" else None
        )
        generator = torch.Generator(device=device).manual_seed(SEED)
        width, transition, initial_state = transitions(sampler, problems, device, dtype)
        self.state = initial_state(chain_index)
        self.step_index = 0
        if mode == "twin":

            def one_step():
                return transition(rng.uniforms(self.step_index, width, dtype=dtype), self.state, True)

        elif mode == "twin-ops":

            def one_step():
                with metropolis_hastings.without_numba():  # the torch operations, as without numba
                    return transition(rng.uniforms(self.step_index, width, dtype=dtype), self.state, True)

        elif mode == "twin-compiled":

            def one_step():
                return transition(rng.uniforms(self.step_index, width, dtype=dtype), self.state, False)

        elif mode == "fast":

            def one_step():
                # The library's torch.Generator path: torch.rand, exact zeros mapped into (0, 1).
                uniforms = draw_uniforms(generator, self.step_index, width, num_chains, dtype=dtype, device=device)
                return transition(uniforms, self.state, False)

        elif mode == "fused":
            compiled, counter_step = fused_step(sampler, problems, device, dtype)
            # Check once that the fused step makes exactly the eager twin's decisions (this also compiles it).
            step_zero = torch.tensor(0, device=device)
            fused_state = compiled(step_zero, chain_index, self.state)
            eager_state = counter_step(step_zero, chain_index, self.state)
            FUSED_MATCHES[(sampler, str(device), num_chains)] = same_states(fused_state, eager_state)

            def one_step():
                # The step number travels as a tensor so that one compiled graph serves every step.
                return compiled(torch.tensor(self.step_index, device=device), chain_index, self.state)

        elif mode == "torch-lines":
            categorical, _, bigram = problems
            tiny = torch.finfo(dtype).tiny
            if sampler == "MH":
                logits = torch.as_tensor(categorical.logits, dtype=dtype, device=device)
                x = chain_index % NUM_CATEGORIES
                self.state = (x, logits[x])
            else:
                log_initial = torch.as_tensor(bigram.log_initial, dtype=dtype, device=device)
                log_transition = torch.as_tensor(bigram.log_transition, dtype=dtype, device=device)
                self.state = (torch.zeros((num_chains, LENGTH), dtype=torch.int64, device=device),)

            def one_step():
                # As the NumPy row draws them: a plain generator, an exact 0 mapped to the smallest normal.
                uniforms = torch.rand((2, num_chains), generator=generator, dtype=dtype, device=device)
                uniforms = uniforms.clamp_(min=tiny).t()  # (N, 2), each uniform contiguous over the chains
                if sampler == "MH":
                    return torch_mh_step(uniforms, *self.state, logits)
                return torch_gibbs_step(uniforms, self.state[0], log_initial, log_transition)[:1]

        elif mode == "compiled-step":
            compiled = compiled_step(sampler, problems, device, dtype)
            # Check that the compiled step makes exactly the eager twin's decisions over three steps (from
            # the initial state, then each from the eager twin's state; this also compiles it). The eager
            # MH step here runs numba's decision loop on the CPU where numba is installed: the comparison
            # is with what users get.
            state, matches = self.state, True
            for step_index in range(3):
                uniforms = rng.uniforms(step_index, width, dtype=dtype)
                compiled_state = compiled(uniforms, state)
                state = transition(uniforms, state, False)
                matches = matches and same_states(compiled_state, state)
            COMPILED_STEP_MATCHES[(sampler, str(device), num_chains)] = matches

            def one_step():
                return compiled(rng.uniforms(self.step_index, width, dtype=dtype), self.state)

        else:
            raise ValueError(mode)
        self.one_step = one_step

    def run(self, num_steps):
        for _ in range(num_steps):
            self.state = self.one_step()
            self.step_index += 1

    def peak_bytes(self):
        carried = sum(t.nbytes for t in self.state)
        if self.device.type == "cuda":
            synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            new_state = self.one_step()
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - before
        else:
            new_state, peak = _profiled_peak(self.one_step)
        self.state = new_state
        self.step_index += 1
        return carried + peak


@contextlib.contextmanager
def _quiet_file_descriptors():
    """Silence file descriptors 1 and 2 for a moment: the profiler's C++ side logs its start and stop there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _profiled_peak(function):
    """``(function(), peak bytes)``: the peak of torch CPU bytes allocated and not yet freed during the call.

    Sums the allocator events of ``torch.profiler`` in time order: an operator's own allocations (net,
    its children's counted separately) and the stand-alone ``[memory]`` events (frees of tensors).
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_file_descriptors(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        result = function()
    changes = []
    for event in profiler.events():
        amount = event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        if amount:
            changes.append((event.time_range.start, amount))
    live = peak = 0
    for _, amount in sorted(changes):
        live += amount
        peak = max(peak, live)
    return result, peak


class JaxRunner(Runner):
    memory_note = "XLA memory_analysis"

    def __init__(self, sampler, num_chains, problems, jax):
        jnp, lax = jax.numpy, jax.lax
        categorical, _, bigram = problems
        self.jax, self.num_chains = jax, num_chains
        tiny = float(np.finfo(np.float32).tiny)
        if sampler == "MH":
            logits = jnp.asarray(categorical.logits, dtype=jnp.float32)

            def chain_step(u, x, log_prob):  # one chain: u (2,), x (), log_prob ()
                y = jnp.minimum((u[0] * NUM_CATEGORIES).astype(jnp.int32), NUM_CATEGORIES - 1)
                accepted = jnp.log(u[1]) < jnp.minimum(logits[y] - log_prob, 0.0)
                return jnp.where(accepted, y, x), jnp.where(accepted, logits[y], log_prob)

            x0 = jnp.arange(num_chains, dtype=jnp.int32) % NUM_CATEGORIES
            self.state = (x0, logits[x0])
        else:
            log_initial = jnp.asarray(bigram.log_initial, dtype=jnp.float32)
            log_transition = jnp.asarray(bigram.log_transition, dtype=jnp.float32)

            def chain_step(u, x):  # one chain: u (2,), x (L,)
                position = jnp.minimum((u[0] * LENGTH).astype(jnp.int32), LENGTH - 1)
                previous, following = x[jnp.maximum(position - 1, 0)], x[jnp.minimum(position + 1, LENGTH - 1)]
                left = jnp.where(position == 0, log_initial, log_transition[previous, :VOCAB_SIZE])
                right = jnp.where(position == LENGTH - 1, log_transition[:, VOCAB_SIZE], log_transition[:, following])
                weights = jnp.exp((left + right) - jnp.max(left + right))
                cumulative = jnp.cumsum(weights)
                token = jnp.minimum(jnp.sum(cumulative <= u[1] * cumulative[-1]), VOCAB_SIZE - 1)
                return (x.at[position].set(token),)

            self.state = (jnp.zeros((num_chains, LENGTH), dtype=jnp.int32),)
        batched = jax.vmap(chain_step)

        def run_steps(state, key, num_steps):
            def body(_, carry):
                state, key = carry
                key, subkey = jax.random.split(key)
                uniforms = jnp.maximum(jax.random.uniform(subkey, (num_chains, 2), dtype=jnp.float32), tiny)
                return batched(uniforms, *state), key

            return lax.fori_loop(0, num_steps, body, (state, key))

        self.compiled = jax.jit(run_steps)
        self.key = jax.random.key(SEED)

    def run(self, num_steps):
        self.state, self.key = self.compiled(self.state, self.key, num_steps)
        self.jax.block_until_ready(self.state)

    def peak_bytes(self):
        try:
            analysis = self.compiled.lower(self.state, self.key, 1).compile().memory_analysis()
            return analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
        except Exception:  # not every backend reports it
            return None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed memory instead of unmapping it (``mallopt``); False where unavailable.

    glibc serves blocks above 32 MiB (1e7 float32 chains: 40 MB) with a fresh ``mmap`` and unmaps them when
    freed, so every step of a large batch touches new pages: one minor fault per 4 KiB. With mmap off
    (``M_MMAP_MAX = 0``) and no trimming (``M_TRIM_THRESHOLD`` at its maximum) the heap keeps the pages of
    the previous step's temporaries and hands them out again. The same as running with the environment
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``; it affects the whole process.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def import_jax(threads):
    """``jax`` (CPU float32 defaults) or ``None`` with the reason; one XLA thread when ``threads == 1``."""
    if threads == 1:
        # Before the import: XLA reads its flags once. Eigen's thread pool off = one thread per op.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    try:
        import jax
    except ImportError as error:
        return None, f"jax not importable ({error}); JAX rows skipped (pip install jax to get them)"
    return jax, None


# ----------------------------------------------------------------------------- measuring
def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def calibrate(runner, min_time: float, max_steps: int) -> int:
    """Steps per repeat so that one repeat lasts about ``min_time`` (after a warm-up step)."""
    runner.run(1)
    synchronize(runner.device)
    steps = 1
    while True:
        start = time.perf_counter()
        runner.run(steps)
        synchronize(runner.device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4 or steps >= max_steps:
            return max(1, min(max_steps, math.ceil(steps * min_time / max(elapsed, 1e-9))))
        steps *= 4


def measure_cell(runners: dict, num_chains: int, repeats: int, min_time: float, max_steps: int) -> dict:
    """Interleaved repeats of every runner of one (sampler, size): name -> statistics (or a failure note)."""
    steps = {}
    cells = {}
    for name, runner in runners.items():
        try:
            steps[name] = calibrate(runner, min_time, max_steps)
        except Exception as error:  # a failed compilation or run is reported, not hidden
            cells[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    rates = {name: [] for name in steps}
    faults = {name: [] for name in steps}
    for _ in range(repeats):
        for name in list(steps):
            runner = runners[name]
            faults_before = minor_faults()
            start = time.perf_counter()
            try:
                runner.run(steps[name])
                synchronize(runner.device)
            except Exception as error:  # reported in its cell; the other runners go on
                cells[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
                del steps[name]
                continue
            elapsed = time.perf_counter() - start
            faults[name].append((minor_faults() - faults_before) / steps[name])
            rates[name].append(num_chains * steps[name] / elapsed)
    for name in steps:
        runner = runners[name]
        try:
            peak = runner.peak_bytes()
        except Exception as error:
            peak = None
            print(f"# peak memory of {name} at {num_chains:.0e}: {type(error).__name__}: {error}", file=sys.stderr)
        cells[name] = {
            "median": statistics.median(rates[name]),
            "min": min(rates[name]),
            "max": max(rates[name]),
            "rates": rates[name],
            "steps_per_repeat": steps[name],
            "minor_faults_per_step": statistics.median(faults[name]),
            "peak_bytes": peak,
            "peak_mb_per_million_chains": None if peak is None else peak / num_chains,
            "memory_measured_by": runner.memory_note if peak is not None else None,
        }
    return cells


def fits_in_memory(num_chains, device) -> bool:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return num_chains * BYTES_PER_CHAIN < 0.5 * free
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return True
    return num_chains * BYTES_PER_CHAIN < 0.25 * available


# ----------------------------------------------------------------------------- tables
def format_size(num_chains: int) -> str:
    return f"1e{round(math.log10(num_chains))} chains"


def format_rate(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.1e}".replace("e+0", "e").replace("e+", "e")


def format_cell(cell, markdown: bool) -> str:
    if cell is None:
        return "–" if markdown else "-"
    if "error" in cell:
        return f"failed ({cell['error'].split(':')[0]})"
    text = f"{format_rate(cell['median'])} [{format_rate(cell['min'])}–{format_rate(cell['max'])}]"
    if cell.get("peak_mb_per_million_chains") is not None:
        text += f" · {cell['peak_mb_per_million_chains']:.0f} MB"
    return text


def row_label(sampler, implementation, device, markdown):
    label = f"{sampler}, {LABELS[implementation]}"
    if device != "cpu":
        label += f", {device}"
    return label


def render(report: dict, markdown: bool) -> str:
    """The tables as text: rates (median [min–max] · MB per 1e6 chains), ratios, page faults."""
    rows = report["rows"]
    sizes = sorted({int(n) for row in rows for n in row["cells"]})
    machine = report["machine"]
    lines = []
    load_before, load_after = report["load_before"], report["load_after"]
    summary = (
        f"Chain-steps per second, random numbers included: median [min–max] of {report['repeats']} interleaved "
        f"repeats of ≥ {report['min_time']} s each · peak memory in MB per million chains. "
        f"Machine: {machine['cpu']} ({machine['cpu_count']} cores), GPU {machine['gpu'] or 'none'}; "
        f"torch {machine['torch']} with {machine['torch_threads']} thread(s), NumPy {machine['numpy']}"
        + (f", JAX {report['jax']} ({report['jax_threads']})" if report.get("jax") else "")
        + f"; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
        f"MH: {NUM_CATEGORIES}-state categorical, uniform proposal; Gibbs: random scan, fixed-length bigram "
        f"V = {VOCAB_SIZE}, L = {LENGTH}. torch and JAX in float32, NumPy in float64. "
        f"Command: `{report['command']}`."
    )
    if markdown:
        lines.append(summary)
        lines.append("")
        lines.append("| sampler, implementation | " + " | ".join(format_size(n) for n in sizes) + " |")
        lines.append("|---|" + "---|" * len(sizes))
        for row in rows:
            label = row_label(row["sampler"], row["implementation"], row["device"], True)
            cells = [format_cell(row["cells"].get(str(n)), True) for n in sizes]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    else:
        lines.append("# " + summary)
        header = f"{'sampler, implementation':58s}" + "".join(f"{format_size(n):>36s}" for n in sizes)
        lines.append(header)
        lines.append("-" * len(header))
        for row in rows:
            label = row_label(row["sampler"], row["implementation"], row["device"], False)
            lines.append(
                f"{label:58s}" + "".join(f"{format_cell(row['cells'].get(str(n)), False):>36s}" for n in sizes)
            )
    ratio_rows = ratio_table(report)
    if ratio_rows:
        lines.append("")
        title = "Ratios of medians from the same run (above 1: the first is faster)"
        if markdown:
            lines.append(title + ":")
            lines.append("")
            lines.append("| ratio | " + " | ".join(format_size(n) for n in sizes) + " |")
            lines.append("|---|" + "---|" * len(sizes))
            for label, values in ratio_rows:
                lines.append(f"| {label} | " + " | ".join(values.get(n, "–") for n in sizes) + " |")
        else:
            lines.append("# " + title)
            for label, values in ratio_rows:
                lines.append(f"{label:58s}" + "".join(f"{values.get(n, '-'):>36s}" for n in sizes))
    if not markdown:
        lines.append("")
        lines.append("# minor page faults per step (median over the repeats), CPU rows")
        for row in rows:
            if row["device"] != "cpu" or row["implementation"] == "reference":
                continue
            label = "faults/step: " + row_label(row["sampler"], row["implementation"], row["device"], False)
            values = [
                f"{cell['minor_faults_per_step']:.3g}" if cell and "error" not in cell else "-"
                for cell in (row["cells"].get(str(n)) for n in sizes)
            ]
            lines.append(f"{label:71s}" + "".join(f"{v:>23s}" for v in values))
    for note in report["notes"]:
        # In Markdown each note is a paragraph of its own (a line right under a table would be read as a row).
        lines.extend(["", note] if markdown else ["# " + note])
    return "\n".join(lines)


def ratio_table(report):
    """[(label, {num_chains: text})] for each ratio of :data:`RATIOS` that has both rows."""
    by_key = {(r["sampler"], r["implementation"], r["device"]): r for r in report["rows"]}
    devices = sorted({r["device"] for r in report["rows"]}, key=lambda d: d != "cpu")
    out = []
    for sampler in report["samplers"]:
        for device in devices:
            for numerator, denominator in RATIOS:
                # NumPy and JAX run on the CPU: a CUDA row is compared with the CPU baselines.
                top = by_key.get((sampler, numerator, device))
                bottom_device = device if denominator in TORCH_IMPLEMENTATIONS else "cpu"
                bottom = by_key.get((sampler, denominator, bottom_device))
                if top is None or bottom is None:
                    continue
                values = {}
                for key, cell in top["cells"].items():
                    other = bottom["cells"].get(key)
                    if cell and other and "error" not in cell and "error" not in other:
                        values[int(key)] = f"{cell['median'] / other['median']:.2f}"
                if values:
                    where = f" ({device})" if device != "cpu" else ""
                    out.append((f"{sampler}: {numerator} / {denominator}{where}", values))
    return out


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-chains", type=float, default=1e7, help="largest batch on CUDA")
    parser.add_argument(
        "--max-cpu-chains", type=float, default=1e5, help="largest batch on the CPU (torch, NumPy, JAX)"
    )
    parser.add_argument(
        "--max-reference-chains",
        type=float,
        default=1e3,
        help="largest batch for the NumPy reference (a Python loop over chains)",
    )
    parser.add_argument(
        "--min-time", type=float, default=0.2, help="seconds per repeat of each cell (after calibration)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per cell (at least 5)")
    parser.add_argument(
        "--implementations",
        "--modes",
        dest="implementations",
        default="reference,numpy,numpy-counter,twin,twin-ops,twin-compiled,fast,fused,compiled-step,torch-lines,jax",
        help="comma-separated, from: " + ", ".join(LABELS),
    )
    parser.add_argument(
        "--cpu-implementations",
        default=None,
        help="comma-separated: which of --implementations run on the CPU (default: all); the others run on "
        "CUDA only (the GPU check keeps the CPU to its peers)",
    )
    parser.add_argument(
        "--max-cpu-fused-chains",
        type=float,
        default=1e4,
        help="largest batch for the fused mode on the CPU (each size compiles anew)",
    )
    parser.add_argument("--samplers", default="MH,Gibbs")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch (and JAX) CPU threads (default: torch's choice); 1 when shared"
    )
    parser.add_argument("--max-steps", type=int, default=100_000, help="cap on the steps of one repeat")
    parser.add_argument("--min-chains", type=float, default=1e3, help="smallest batch measured")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="glibc malloc without mmap and trimming: freed pages are reused, no page faults per step (Linux)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (the README's)")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error(f"--repeats must be at least 5 (a median with a range), got {args.repeats}")
    unknown = set(args.implementations.split(",")) - set(LABELS) - {""}
    if unknown:
        parser.error(f"unknown implementation(s) {sorted(unknown)}; choose from {', '.join(LABELS)}")
    if args.cpu_implementations is not None:
        outside = set(args.cpu_implementations.split(",")) - set(args.implementations.split(",")) - {""}
        if outside:
            parser.error(
                f"--cpu-implementations {sorted(outside)} not in --implementations ({args.implementations})"
            )
    return args


def main(argv=None):
    args = parse_args(argv)
    command = "python benchmarks/bench_twins.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        # On a machine shared with other jobs, OpenMP threads that wait for busy cores can be 50x slower.
        torch.set_num_threads(args.threads)
    implementations = [m for m in args.implementations.split(",") if m]
    notes = [
        "torch's CPU allocator asks for transparent huge pages (THP_MEM_ALLOC_ENABLE=1)"
        if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"
        else "torch's CPU allocator does not ask for huge pages (THP_MEM_ALLOC_ENABLE not 1: torch's default)"
    ]
    if args.keep_freed_memory:
        kept = keep_freed_memory()
        notes.append(
            "malloc keeps freed memory (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2**31 - 1)"
            if kept
            else "--keep-freed-memory: mallopt unavailable here, malloc left as it is"
        )
    jax = None
    if "jax" in implementations:
        jax, note = import_jax(args.threads)
        if note:
            notes.append(note)
            print("# " + note)
            implementations.remove("jax")
    if any(name.startswith("twin") or name == "compiled-step" for name in implementations):
        # (the compiled step draws its uniforms as the twin does; its decisions are traced torch operations)
        notes.append(
            f"torch twin's CPU counter uniforms and MH decisions: numba {importlib.metadata.version('numba')}'s "
            "compiled loops (twin-ops: the torch operations)"
            if numba_kernel_available() and metropolis_hastings.numba_kernel_available()
            else "torch twin's CPU counter uniforms and MH decisions: the torch operations "
            "(numba not installed or not loadable)"
        )
    problems = make_problems()
    machine = machine_description()
    load_before = os.getloadavg()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda", 0))
    samplers = [s for s in args.samplers.split(",") if s]

    cpu_implementations = implementations if args.cpu_implementations is None else args.cpu_implementations.split(",")

    def cap(implementation, device):
        if device.type == "cuda":
            return args.max_chains
        if implementation not in cpu_implementations:
            return 0
        if implementation == "reference":
            return args.max_reference_chains
        if implementation == "fused":
            return min(args.max_cpu_chains, args.max_cpu_fused_chains)
        return args.max_cpu_chains

    def make_runner(sampler, implementation, num_chains, device):
        if implementation == "reference":
            return ReferenceRunner(sampler, num_chains, problems)
        if implementation in ("numpy", "numpy-counter"):
            return NumpyRunner(sampler, num_chains, problems, counter=implementation == "numpy-counter")
        if implementation == "jax":
            return JaxRunner(sampler, num_chains, problems, jax)
        return TorchRunner(sampler, implementation, num_chains, problems, device)

    rows = []
    failed = set()  # (sampler, implementation, device): once failed, larger sizes are not tried

    def make_report(rows, complete):
        """The report of the cells measured so far (``complete``: every sampler and size was tried)."""
        notes_now = list(notes)
        for what, matches in (("fused step", FUSED_MATCHES), ("compiled step", COMPILED_STEP_MATCHES)):
            if matches:
                checked = ", ".join(f"{k[0]} {k[1]} {format_size(k[2])}: {v}" for k, v in matches.items())
                steps = "step 0" if matches is FUSED_MATCHES else "steps 0-2"
                verdict = all(matches.values())
                notes_now.append(f"{what} bit-identical to the eager twin ({steps}): {verdict} ({checked})")
        if not complete:
            notes_now.append("partial report: the run stopped before every sampler and size was measured")
        return {
            "machine": machine,
            "command": command.strip(),
            "repeats": args.repeats,
            "min_time": args.min_time,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "jax": jax.__version__ if jax else None,
            "jax_threads": "one XLA thread" if args.threads == 1 else "XLA's default threads",
            "samplers": samplers,
            "rows": rows,
            "fused_matches_twin": {" ".join(map(str, key)): value for key, value in FUSED_MATCHES.items()},
            "compiled_step_matches_twin": {
                " ".join(map(str, key)): value for key, value in COMPILED_STEP_MATCHES.items()
            },
            "notes": notes_now,
            "keep_freed_memory": args.keep_freed_memory,
            "complete": complete,
        }

    def collect(sampler, sampler_rows):
        """The rows of one sampler, CPU first, in the order of LABELS."""
        order = {name: i for i, name in enumerate(LABELS)}
        return [
            {"sampler": sampler, "implementation": implementation, "device": device, "cells": cells}
            for (implementation, device), cells in sorted(
                sampler_rows.items(), key=lambda item: (item[0][1] != "cpu", order[item[0][0]])
            )
        ]

    out = os.environ.get("OUT")
    for sampler in samplers:
        sampler_rows = {}
        for num_chains in SIZES:
            if num_chains < args.min_chains:
                continue
            runners = {}
            for implementation in implementations:
                # twin-ops differs from twin on the CPU only (numba makes no CUDA uniforms)
                on_every_device = implementation in TORCH_IMPLEMENTATIONS and implementation != "twin-ops"
                for device in devices if on_every_device else devices[:1]:
                    key = (implementation, str(device))
                    if (sampler,) + key in failed or num_chains > cap(implementation, device):
                        continue
                    if not fits_in_memory(num_chains, device):
                        continue
                    try:
                        runners[key] = make_runner(sampler, implementation, num_chains, device)
                    except Exception as error:  # a failed compilation is reported, not hidden
                        sampler_rows.setdefault(key, {})[str(num_chains)] = {
                            "error": f"{type(error).__name__}: {str(error)[:300]}"
                        }
                        failed.add((sampler,) + key)
                        print(f"# {sampler} {key} {num_chains:.0e}: {type(error).__name__}: {error}", file=sys.stderr)
            if not runners:
                continue
            cells = measure_cell(runners, num_chains, args.repeats, args.min_time, args.max_steps)
            for key, cell in cells.items():
                sampler_rows.setdefault(key, {})[str(num_chains)] = cell
                if "error" in cell:
                    failed.add((sampler,) + key)
            del runners
            if out:  # what was measured so far, in case the run is stopped (the GPU check's time caps)
                write_report(make_report(rows + collect(sampler, sampler_rows), complete=False), out)
        rows.extend(collect(sampler, sampler_rows))

    report = make_report(rows, complete=True)
    text = render(report, args.markdown)
    print(text)
    if out:
        path = write_report(report, out)
        print(("" if args.markdown else "# ") + f"written {path}")
    return report


def write_report(report: dict, out) -> Path:
    """``bench_twins.json`` and ``bench_twins.md`` under ``out``, each replaced whole (written aside, then renamed)."""
    path = Path(out) / "bench_twins.json"
    for target, text in ((path, json.dumps(report, indent=2)), (path.with_suffix(".md"), render(report, True) + "\n")):
        aside = target.with_name(target.name + ".partial")
        aside.write_text(text)
        aside.replace(target)
    return path


if __name__ == "__main__":
    main()
