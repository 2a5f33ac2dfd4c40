"""The kernel contract: every Markov-chain sampler, reference and twin, speaks the same API.

For each algorithm the reference module ``textsampling.reference.<algo>`` and its torch twin
``textsampling.torch.<algo>`` must have

    init(x0, <target>, **params) -> State
    num_uniforms(...) -> int
    step(uniforms, state, <target>, **params) -> (State, Info)
    sample(rng, x0, <target>, num_steps, *, first_step=0, **params) -> chain.Trace

with the same parameter names, order, defaults and keyword-only-ness on both sides (the twin may add
only the keyword-only extras in ``TWIN_EXTRAS`` at the end), State/Info NamedTuples with the same
fields, ``log_accept_prob`` (never ``log_accept_ratio``) for min(0, log Hastings ratio), and a trace
that is the one ``chain.Trace`` layout. Introspection only: any drift between the pair fails here.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

torch = pytest.importorskip("torch")

from textsampling.reference import chain as reference_chain  # noqa: E402
from textsampling.torch import chain as torch_chain  # noqa: E402

#: algorithm module -> (State, Info, Trace) names and the target parameters between the fixed ones.
ALGORITHMS = {
    "metropolis_hastings": ("MHState", "MHInfo", "MHTrace", ["log_prob_fn", "proposal"]),
    "annealing": ("MHState", "AnnealingInfo", "AnnealingTrace", ["log_prob_fn", "proposal"]),
    "hill_climbing": ("MHState", "HillClimbInfo", "HillClimbTrace", ["log_prob_fn", "proposal"]),
    "gibbs": ("GibbsState", "GibbsInfo", "GibbsTrace", ["conditional_log_probs"]),
    "mlm_gibbs": ("MLMGibbsState", "MLMGibbsInfo", "MLMGibbsTrace", ["model"]),
    "mlm_metropolis_hastings": ("MLMMHState", "MLMMHInfo", "MLMMHTrace", ["model"]),
    "cgmh": ("CGMHState", "CGMHInfo", "CGMHTrace", ["config"]),
    "sentence_annealing": ("CGMHState", "SentenceAnnealingInfo", "SentenceAnnealingTrace", ["config"]),
    "smc": ("SMCState", "SMCInfo", "SMCTrace", ["model", "log_potential"]),
    "annealed_importance": ("AISState", "AISInfo", "AISTrace", ["log_prob_fn", "base", "proposal"]),
    "parallel_tempering": ("PTState", "PTInfo", "PTTrace", ["log_prob_fn", "proposal"]),
    "sentence_tempering": ("SentenceTemperingState", "SentenceTemperingInfo", "SentenceTemperingTrace", ["config"]),
}
#: Keyword-only parameters only a twin may add (its batch, dtype and device), at the end.
TWIN_EXTRAS = {"dtype", "validate", "device", "num_chains"}
#: Info fields that have a fixed relative order wherever they appear.
INFO_ORDER = ["move", "position", "proposal", "log_accept_prob", "accepted"]
FUNCTIONS = ("init", "num_uniforms", "step", "sample")


def _modules(algorithm):
    return (
        importlib.import_module(f"textsampling.reference.{algorithm}"),
        importlib.import_module(f"textsampling.torch.{algorithm}"),
    )


def _parameters(function):
    return list(inspect.signature(function).parameters.values())


def _describe(parameter):
    return (parameter.name, parameter.kind, parameter.default)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("side", ["reference", "torch"])
def test_every_function_of_the_contract_is_defined_in_the_module(algorithm, side):
    module = _modules(algorithm)[side == "torch"]
    for name in FUNCTIONS:
        function = getattr(module, name, None)
        assert callable(function), f"{module.__name__} has no {name}()"
        # Defined here (a thin function over another module's is fine), so the module reads whole.
        assert function.__module__ == module.__name__, (
            f"{module.__name__}.{name} is re-exported from {function.__module__}"
        )


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("side", ["reference", "torch"])
def test_fixed_parameters_come_first_in_the_same_order(algorithm, side):
    target = ALGORITHMS[algorithm][3]
    module = _modules(algorithm)[side == "torch"]
    names = {name: [p.name for p in _parameters(getattr(module, name))] for name in FUNCTIONS}
    assert names["init"][: 1 + len(target)] == ["x0"] + target, names["init"]
    assert names["step"][: 2 + len(target)] == ["uniforms", "state"] + target, names["step"]
    assert names["sample"][: 3 + len(target)] == ["rng", "x0"] + target + ["num_steps"], names["sample"]
    first_step = inspect.signature(module.sample).parameters["first_step"]
    assert first_step.kind is inspect.Parameter.KEYWORD_ONLY and first_step.default == 0


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("name", FUNCTIONS)
def test_twin_signature_equals_the_reference_signature(algorithm, name):
    reference, twin = _modules(algorithm)
    expected = [_describe(p) for p in _parameters(getattr(reference, name))]
    got = _parameters(getattr(twin, name))
    shared = [p for p in got if p.name not in TWIN_EXTRAS]
    extras = [p for p in got if p.name in TWIN_EXTRAS]
    assert [_describe(p) for p in shared] == expected, f"{twin.__name__}.{name} drifts from the reference"
    for parameter in extras:
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, f"twin extra {parameter.name} must be keyword-only"
    assert got[len(got) - len(extras):] == extras, "twin extras come last"


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_states_infos_and_traces_are_the_same_named_tuples(algorithm):
    state_name, info_name, trace_name, _ = ALGORITHMS[algorithm]
    reference, twin = _modules(algorithm)
    for kind in (state_name, info_name):
        reference_type, twin_type = getattr(reference, kind), getattr(twin, kind)
        assert issubclass(reference_type, tuple) and hasattr(reference_type, "_fields"), kind
        assert twin_type._fields == reference_type._fields, f"{kind}: {twin_type._fields} != {reference_type._fields}"
    state_fields = getattr(reference, state_name)._fields
    assert state_fields[0] == "x", state_fields
    if "log_prob" in state_fields:
        assert state_fields[1] == "log_prob", state_fields
    info_fields = getattr(reference, info_name)._fields
    assert "log_accept_ratio" not in info_fields, "min(0, log ratio) is named log_accept_prob"
    ordered = [field for field in INFO_ORDER if field in info_fields]
    assert [field for field in info_fields if field in INFO_ORDER] == ordered, info_fields
    assert getattr(reference, trace_name) is reference_chain.Trace
    assert getattr(twin, trace_name) is torch_chain.Trace


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("side", ["reference", "torch"])
def test_sample_is_built_on_the_one_runner(algorithm, side):
    # The loop, the uniforms of step t and the KeyboardInterrupt handling live in chain.run only.
    module = _modules(algorithm)[side == "torch"]
    source = inspect.getsource(module.sample)
    assert "chain.run(" in source or "run_chain(" in source, f"{module.__name__}.sample does not call chain.run"
    assert "KeyboardInterrupt" not in inspect.getsource(module), f"{module.__name__} handles interrupts itself"


@pytest.mark.parametrize(
    "annealing, base", [("annealing", "metropolis_hastings"), ("sentence_annealing", "cgmh")]
)
def test_an_annealing_info_is_its_kernels_info_plus_the_temperature(annealing, base):
    for side in (0, 1):
        annealing_module, base_module = _modules(annealing)[side], _modules(base)[side]
        info = getattr(annealing_module, ALGORITHMS[annealing][1])
        base_info = getattr(base_module, ALGORITHMS[base][1])
        assert info._fields == base_info._fields + ("temperature",)
        assert annealing_module.best.__module__ == annealing_module.__name__


def test_the_energy_parameter_has_one_name():
    for module in _modules("mlm_metropolis_hastings"):
        for name in ("init", "step", "sample", "transition_matrix"):
            function = getattr(module, name, None)
            if function is None:
                continue
            parameters = inspect.signature(function).parameters
            assert "kind" not in parameters, f"{module.__name__}.{name}: the parameter is energy_kind"
            assert "energy_kind" in parameters, f"{module.__name__}.{name} has no energy_kind"
