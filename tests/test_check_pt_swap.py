"""`textsampling check --kind pt-swap`: the swap step of parallel tempering against the product law.

The correct swaps (the reference's `parallel_tempering.swap`, `examples/my_swap.py`) pass; the wrong ones of
`testing.faulty` fail, each with an exact power >= 0.999 computed from its exact kernel; malformed returns,
wrong signatures and bad options are refused clearly. Every check runs with its fixed seed.
"""

from pathlib import Path

import numpy as np
import pytest

from textsampling.cli import check as check_command
from textsampling.cli import main
from textsampling.reference import parallel_tempering
from textsampling.targets.named import make_target
from textsampling.testing import conformance, faulty, replica_exchange
from textsampling.testing.statistics import DEFAULT_FALSE_FAIL_RATE, power_lower_bound

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_swap.py"
WRONG_SWAPS = [faulty.pt_swap_without_temperatures, faulty.pt_swap_with_tempered_log_probs,
               faulty.pt_swap_with_wrong_sign]


@pytest.mark.parametrize("name, temperatures", [("categorical-small", (1.0, 2.0, 4.0)), ("bigram-small", (1.0, 3.0)),
                                                ("pairwise-small", (1.0, 1.5))])
def test_the_product_law_and_the_swap_kernel_are_the_references(name, temperatures):
    base = make_target(name)
    product = replica_exchange.ReplicaProduct(base, temperatures)
    np.testing.assert_allclose(product.log_probabilities(),
                               parallel_tempering.product_log_probs(base, temperatures), atol=1e-12)
    assert np.array_equal(product.state_index(product.states), np.arange(product.num_states))
    kernel = replica_exchange.swap_kernel(base, temperatures)
    assert np.array_equal(kernel, parallel_tempering.swap_transition_matrix(base, np.array(temperatures)))
    pi = product.probabilities()
    np.testing.assert_allclose(pi @ kernel, pi, atol=1e-15)  # the correct swap keeps the product law, exactly


@pytest.mark.parametrize("swap", [parallel_tempering.swap, replica_exchange.swap_with(
    parallel_tempering.swap_log_accept_prob)], ids=["reference", "swap_with"])
@pytest.mark.parametrize("target", ["categorical-small", "categorical-far"])
def test_correct_swaps_pass(swap, target):
    report = conformance.check_step(swap, "pt-swap", target)
    assert report.passed, report.format()
    assert [outcome.result.name for outcome in report.outcomes] == ["one-step invariance", "transition law"]
    assert report.outcomes[0].result.num_samples == replica_exchange.DEFAULT_NUM_SAMPLES


@pytest.mark.parametrize("make_case", WRONG_SWAPS)
def test_each_wrong_swap_fails_with_a_stated_power(make_case):
    case = make_case()
    product = conformance.stationary_target("pt-swap", case.target, temperatures=case.options["temperatures"])
    pi = product.probabilities()
    moved = pi @ case.kernel()
    assert 0.5 * np.abs(moved - pi).sum() > 0.05  # how far one wrong swap moves an exact draw of the product
    # the one-step test alone, on the cells it bins into, at its share of the false-fail rate: power >= 0.999
    num_samples = replica_exchange.DEFAULT_NUM_SAMPLES
    cells = replica_exchange.ProbabilityCells(product, num_samples)
    binned_tv = 0.5 * np.abs(np.bincount(cells.cells, weights=moved) - cells.probabilities).sum()
    power = power_lower_bound(num_samples, binned_tv, DEFAULT_FALSE_FAIL_RATE / 2, cells.probabilities.size - 1)
    assert power >= 0.999, (case.name, binned_tv, power)
    report = conformance.check_step(case.step, case.kind, case.target, **case.options)
    assert not report.passed and not report.outcomes[0].result.passed, report.format()
    assert "FAILS" in report.format()


def test_the_wrong_swaps_kernels_are_their_steps():
    """The exact kernels the powers come from describe the wrong code itself (a transition-law test)."""
    from textsampling.testing.black_box import transition_law_test

    for make_case in WRONG_SWAPS:
        case = make_case()
        product = conformance.stationary_target("pt-swap", case.target, temperatures=case.options["temperatures"])
        caller = replica_exchange.SwapCaller(case.step, product)
        result = transition_law_test(caller, product, case.kernel(), np.random.default_rng(5), 5_000)
        assert result.passed, (case.name, result)


def _sweep(uniforms, state, *, temperatures):
    """A correct swap of another scheme: every pair in turn, (0,1) then (1,2)... (keeps the product, not reversible)."""
    x, log_prob = np.array(state.x), np.array(state.log_prob)
    for i in range(len(x) - 1):
        log_alpha = parallel_tempering.swap_log_accept_prob(log_prob[i], log_prob[i + 1], temperatures[i],
                                                            temperatures[i + 1])
        if np.log(uniforms[1 + i]) < log_alpha:
            x[[i, i + 1]], log_prob[[i, i + 1]] = x[[i + 1, i]], log_prob[[i + 1, i]]
    return state._replace(x=x, log_prob=log_prob)


def test_a_correct_swap_of_another_scheme_passes_without_the_exact_kernel():
    assert conformance.check_step(_sweep, "pt-swap", exact_kernel=False).passed
    # against the even-odd kernel it fails: it exchanges replicas 0 and 2 in one step, which that kernel never does
    report = conformance.check_step(_sweep, "pt-swap")
    assert report.outcomes[0].result.passed and not report.outcomes[1].result.passed


@pytest.mark.parametrize(
    "body, message",
    [
        ("return None", "returned None"),
        ("return np.array(state.x)", "return the swapped state"),
        ("return state._replace(x=np.array(state.x)[::-1].copy())", "the log-densities must move with their states"),
        ("return state._replace(x=np.array([state.x[0]] * len(state.x)), log_prob=np.array([state.log_prob[0]] * "
         "len(state.x)))", "never makes or copies one"),
        ("return state._replace(x=np.array(state.x, dtype=float))", "dtype float64"),
        ("raise RuntimeError('boom')", "raised RuntimeError: boom"),
    ],
)
def test_a_malformed_swap_fails_at_once_naming_the_state(body, message):
    namespace = {"np": np}
    exec(f"def swap(uniforms, state, *, temperatures):\n    {body}\n", namespace)
    report = conformance.check_step(namespace["swap"], "pt-swap", num_samples=200)
    assert not report.passed and message in report.error and "(at x = [" in report.error
    assert "malformed step function" in report.format()


def test_wrong_signature_and_bad_options_are_usage_errors():
    def step(rng, x, target):
        return x

    with pytest.raises(conformance.StepSignatureError, match="then temperatures by keyword"):
        conformance.check_step(step, "pt-swap")
    with pytest.raises(ValueError, match="temperatures is used by kind 'pt-swap' only"):
        conformance.check_step(step, "mh", temperatures=(1.0, 2.0))
    with pytest.raises(ValueError, match="exact_kernel is used by kind 'pt-swap' only"):
        conformance.check_step(step, "mh", exact_kernel=True)
    with pytest.raises(ValueError, match="strictly increasing"):
        conformance.check_step(parallel_tempering.swap, "pt-swap", temperatures=(2.0, 1.0))
    with pytest.raises(ValueError, match="the dense swap kernel is too large"):
        conformance.check_step(parallel_tempering.swap, "pt-swap", "bigram-small", exact_kernel=True)
    with pytest.raises(ValueError, match="target for kind 'pt-swap' must be one of"):
        conformance.check_step(parallel_tempering.swap, "pt-swap", "bigram-keywords")


def test_a_joint_space_too_large_for_the_kernel_runs_the_one_step_test_only():
    report = conformance.check_step(parallel_tempering.swap, "pt-swap", "pairwise-small", num_samples=2_000)
    assert [outcome.result.name for outcome in report.outcomes] == ["one-step invariance"]  # 27^3 joint states
    assert report.passed, report.format()


def test_the_command_line_passes_the_example_and_fails_a_wrong_swap(tmp_path, capsys):
    assert main(["check", f"{EXAMPLE}:my_swap", "--kind", "pt-swap", "--target", "categorical-small"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASSES" in out and "3 replicas at T = 1, 2, 4" in out
    wrong = tmp_path / "wrong_swap.py"
    wrong.write_text(
        "from textsampling.testing import faulty\n"
        "wrong_swap = faulty.pt_swap_without_temperatures().step\n"
    )
    assert main(["check", f"{wrong}:wrong_swap", "--kind", "pt-swap", "--temperatures", "1,2,4", "--reversible"]) == 1
    out = capsys.readouterr().out
    assert "verdict: FAILS" in out and "3 tests" in out
    # usage errors: exit status 2, one line
    assert main(["check", f"{EXAMPLE}:my_swap", "--kind", "pt-swap", "--temperatures", "2,1"]) == 2
    assert "strictly increasing" in capsys.readouterr().err
    assert main(["check", f"{EXAMPLE}:my_swap", "--kind", "mh", "--temperatures", "1,2"]) == 2
    assert "temperatures is used by kind 'pt-swap' only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", f"{EXAMPLE}:my_swap", "--kind", "pt-swap", "--temperatures", "1,hot"])
    assert "--temperatures must be comma-separated numbers" in capsys.readouterr().err


def test_check_help_lists_the_kind():
    parser, _ = __import__("textsampling.cli", fromlist=["subcommand_parser"]).subcommand_parser("check")
    text = " ".join(parser.format_help().split())
    assert "pt-swap swap(uniforms, state, *, temperatures) -> state" in text
    assert "--temperatures" in text and "--no-exact-kernel" in text
    assert check_command.load_step_function(f"{EXAMPLE}:my_swap").__name__ == "my_swap"


def test_a_budget_shrinks_the_sample_and_the_plot_shows_the_most_probable_joint_states(tmp_path):
    report = conformance.check_step(parallel_tempering.swap, "pt-swap", budget=1e-9)
    assert report.scale < 1 and report.outcomes[0].result.num_samples == 500  # the floor
    assert "sample sizes scaled by" in report.format()
    path = report.plot(tmp_path / "swap.png")
    assert path.stat().st_size > 0
    big = conformance.check_step(parallel_tempering.swap, "pt-swap", "pairwise-small", num_samples=2_000)
    assert big.plot(tmp_path / "big.png").stat().st_size > 0  # 27^3 joint states: only the most probable drawn
