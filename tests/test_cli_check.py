"""`textsampling check`: loading, signatures, malformed returns, budget, report, plot, exit codes.

Statistical verdicts on correct and wrong samplers are in test_gallery.py; here the step functions
are deterministic or their verdict does not matter, except where stated.
"""

import argparse
import textwrap

import numpy as np
import pytest

from textsampling.cli import check as check_command
from textsampling.cli import main
from textsampling.gallery import CASES, CORRECT
from textsampling.targets import named
from textsampling.testing import conformance as check

SMALL = dict(num_samples=500, num_chains=100, num_steps=5, budget=None)


def identity(rng, x, target):
    return np.array(x)


def test_every_kind_documents_its_signature_and_has_valid_targets():
    for kind in check.KINDS.values():
        assert kind.signature.startswith(("step(rng, x", "swap(uniforms, state"))
        for name in kind.targets:
            target = named.make_target(name)
            assert target.num_states <= 200  # enumerable, so the checks are exact tests
    for name in named.TARGETS:
        assert named.make_target(name).log_normalizer() > -np.inf


def test_bad_kind_target_and_options_are_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="kind must be one of"):
        check.check_step(identity, "metropolis")
    with pytest.raises(ValueError, match="target for kind 'gibbs' must be one of"):
        check.check_step(identity, "gibbs", "categorical-small")
    with pytest.raises(ValueError, match="false_fail_rate"):
        check.check_step(identity, "mh", false_fail_rate=2.0)
    with pytest.raises(ValueError, match="budget"):
        check.check_step(identity, "mh", budget=-1)


def test_wrong_signature_is_a_usage_error():
    def two_arguments(x, target):
        return x

    with pytest.raises(check.StepSignatureError, match=r"cannot be called as step\(rng, x, target, temperature\)"):
        check.check_step(two_arguments, "anneal")


@pytest.mark.parametrize(
    "body, message",
    [
        ("return None", "returned None"),
        ("return (np.array(x), {'accepted': True})", "return the new state only"),
        ("return np.array(x, dtype=float)", "dtype float64"),
        ("return np.array(x)[:2]", "returned shape"),
        ("y = np.array(x); y[0] = 7; return y", "token 7 is outside the vocabulary 0..2"),
        ("raise RuntimeError('oops')", "raised RuntimeError: oops"),
    ],
)
def test_malformed_returns_fail_with_the_state_that_caused_them(body, message):
    namespace = {"np": np}
    exec(f"def step(rng, x, target):\n    {body}", namespace)
    report = check.check_step(namespace["step"], "mh", "bigram-small", **SMALL)
    assert not report.passed and report.error is not None
    assert message in report.error and "at x = [" in report.error
    assert "malformed step function" in report.format()


def test_dropping_a_keyword_is_reported():
    def drop_keywords(rng, x, target):
        y = np.array(x)
        y[y == 2] = 0
        return y

    report = check.check_step(drop_keywords, "cgmh", "bigram-keywords", **SMALL)
    assert "dropped keyword(s) [2]" in report.error


def test_a_zero_probability_state_is_reported():
    def to_padded_keywordless(rng, x, target):
        return np.array([0, -1, -1, -1])

    report = check.check_step(to_padded_keywordless, "cgmh", "bigram-keywords", **SMALL)
    assert report.error is not None and "dropped keyword" in report.error


def test_the_budget_scales_sizes_down_and_says_so():
    case = CORRECT["mh-reference"]
    report = check.check_step(case.step, "mh", "bigram-small", budget=0.5, num_steps=20)
    assert report.scale < 1.0
    assert report.outcomes[0].result.num_samples < check.KINDS["mh"].num_samples
    assert "budget 0.5 s: sample sizes scaled by" in report.format()


def _slow_clock(monkeypatch, seconds_per_call):
    """A machine so loaded that every reading of the clock is ``seconds_per_call`` later."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(check.time, "perf_counter", lambda: seconds_per_call * next(ticks))


def test_the_default_verdict_does_not_depend_on_the_clock(monkeypatch):
    # No budget by default: the same seed gives the same sizes, p-values and verdict on an idle
    # machine and on one where every clock reading jumps 1,000 s.
    case = CORRECT["mh-reference"]
    sizes = dict(num_samples=500, num_chains=100, num_steps=5)
    idle = check.check_step(case.step, "mh", "bigram-small", seed=4, **sizes)
    _slow_clock(monkeypatch, 1000.0)
    loaded = check.check_step(case.step, "mh", "bigram-small", seed=4, **sizes)
    assert idle.budget is None and loaded.scale == 1.0
    assert [o.result.num_samples for o in loaded.outcomes] == [o.result.num_samples for o in idle.outcomes]
    assert loaded.p_values == idle.p_values
    assert loaded.passed == idle.passed
    assert "budget" not in loaded.format()


def test_an_opt_in_budget_that_is_not_binding_says_so_and_changes_nothing():
    case = CORRECT["mh-reference"]
    sizes = dict(num_samples=500, num_chains=100, num_steps=5, seed=4)
    fixed = check.check_step(case.step, "mh", "bigram-small", **sizes)
    roomy = check.check_step(case.step, "mh", "bigram-small", budget=1e6, **sizes)
    assert roomy.scale == 1.0 and roomy.p_values == fixed.p_values
    assert "budget 1e+06 s: not binding" in roomy.format()


def test_the_cli_budget_is_opt_in():
    parser = argparse.ArgumentParser()
    check_command.add_arguments(parser)
    assert parser.parse_args(["m:f", "--kind", "mh"]).budget is None
    assert parser.parse_args(["m:f", "--kind", "mh", "--budget", "30"]).budget == 30.0
    assert "opt-in" in parser.format_help()


def test_one_false_fail_rate_and_one_tv_alternative_shared_with_the_tests():
    from textsampling.testing import statistics

    assert check.DEFAULT_FALSE_FAIL_RATE is statistics.DEFAULT_FALSE_FAIL_RATE
    assert check.DEFAULT_TV_ALTERNATIVE is statistics.DEFAULT_TV_ALTERNATIVE
    parser = argparse.ArgumentParser()
    check_command.add_arguments(parser)
    assert parser.parse_args(["m:f", "--kind", "mh"]).tv_alternative == statistics.DEFAULT_TV_ALTERNATIVE
    assert parser.parse_args(["m:f", "--kind", "mh", "--tv", "0.1"]).tv_alternative == 0.1  # the flag stays --tv
    report = check.check_step(identity, "mh", "bigram-small", tv_alternative=0.1, num_samples=200, num_chains=0,
                              num_steps=1, budget=None)
    assert report.tv_alternative == 0.1 and "at TV 0.1" in report.format()
    with pytest.warns(DeprecationWarning, match="tv_alternative"):
        assert report.tv_distance == 0.1
    with pytest.raises(ValueError, match="tv_alternative"):
        check.check_step(identity, "mh", tv_alternative=1.5)


def test_failing_report_lists_misfit_states_and_writes_a_plot(tmp_path):
    # Exact power of this bug at these sizes is > 1 - 1e-6 (tv 0.39 in one step): it fails.
    case = CASES["anneal-wrong-sign"]
    report = check.check_step(case.step, case.kind, case.target, num_samples=2000, num_chains=0, budget=None,
                              **case.options)
    assert not report.passed
    over, under = report.misfit_rows()
    assert over and under and all(ratio > 1 for *_, ratio in over) and all(ratio < 1 for *_, ratio in under)
    text = report.format()
    assert "most over- and under-sampled" in text and "verdict: FAILS" in text and "power" in text
    path = report.plot(tmp_path / "misfit.png")
    assert path.stat().st_size > 1000


def test_load_step_function_from_a_file_and_from_a_module(tmp_path, monkeypatch):
    source = tmp_path / "student_code.py"
    source.write_text("def my_step(rng, x, target):\n    return x\nvalue = 3\n")
    assert check_command.load_step_function(f"{source}:my_step").__name__ == "my_step"
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_command.load_step_function("student_code:my_step").__name__ == "my_step"
    for spec, message in [
        ("student_code", "module:function"),
        ("no_such_module_xyz:f", "cannot import module"),
        ("student_code:missing", "no attribute 'missing'"),
        ("student_code:value", "not a function"),
        (f"{tmp_path}/absent.py:f", "does not exist"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_command.load_step_function(spec)


def _write(tmp_path, source):
    path = tmp_path / "steps.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_cli_exit_codes_and_plot(tmp_path, capsys):
    path = _write(tmp_path, """
        import numpy as np
        def frozen(rng, x, target):
            return np.array(x)
        def wrong_signature(x):
            return x
        def bad(rng, x, target):
            return np.array(x)[:1]
    """)
    plot = tmp_path / "frozen.png"
    # A kernel that never moves fails the long-run test with certainty (all chains stay at the start).
    code = main(["check", f"{path}:frozen", "--kind", "mh", "--num-samples", "500", "--num-chains", "100",
                 "--num-steps", "3", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 1 and "verdict: FAILS" in out and "long-run fit" in out and plot.exists()
    assert main(["check", f"{path}:bad", "--kind", "mh"]) == 1
    assert "returned shape" in capsys.readouterr().out
    assert main(["check", f"{path}:wrong_signature", "--kind", "mh"]) == 2
    assert "cannot be called as" in capsys.readouterr().err
    assert main(["check", f"{path}:frozen", "--kind", "gibbs", "--target", "categorical-small"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["check", f"{path}:frozen", "--kind", "nonsense"])
    assert exit_info.value.code == 2


def test_cli_passes_a_correct_sampler(tmp_path, capsys):
    # The reference ring-proposal MH on categorical-small: fails with probability <= 1e-4 (the stated
    # false-fail rate; mixing within 100 steps is exact to TV 4e-11, test_gallery.py). Seed fixed.
    path = _write(tmp_path, """
        from textsampling.gallery.correct import mh_step
    """)
    code = main(["check", f"{path}:mh_step", "--kind", "mh", "--target", "categorical-small",
                 "--num-samples", "2000"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verdict: PASSES" in out and "false-fail rate 0.0001" in out and "p-value" in out
