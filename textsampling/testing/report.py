r"""What :func:`textsampling.testing.conformance.check_step` found: :class:`CheckReport` (the verdict,
each test's :class:`TestOutcome`, the printed report and the misfit plot)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textsampling.targets.base import PAD, DiscreteTarget
from textsampling.targets.named import TARGETS

__all__ = ["TestOutcome", "CheckReport", "MAX_PLOTTED_STATES"]

#: The misfit plot shows at most this many states (the most probable): a pt-swap check's joint space
#: can hold thousands, and a bar each would make a figure wider than an image may be.
MAX_PLOTTED_STATES = 80


@dataclass
class TestOutcome:
    """One test of a check: the harness's result, how long it took, and what it needed."""

    result: object  # textsampling.testing.StatisticalTestResult
    seconds: float
    detail: str


@dataclass
class CheckReport:
    """What :func:`~textsampling.testing.conformance.check_step` found: ``print(report.format())``,
    ``report.passed``, ``report.plot(path)``.

    Attributes
    ----------
    step_name, kind, target_name : str
    target : DiscreteTarget
        The law the step must keep (tempered for ``anneal``).
    false_fail_rate, tv_alternative : float
        Probability that a correct sampler fails the whole check; the TV distance the powers refer to.
    outcomes : list of TestOutcome
    error : str or None
        Why the step function was malformed (then the check fails without statistics).
    observed, expected : numpy.ndarray or None
        Counts per state of the one-step test and their expectations under the target.
    budget : float or None
        The opt-in time budget (``None``: none, the fixed sample sizes).
    scale : float
        The factor by which the budget shrank the sample sizes (1 = none).
    seconds : float
        Wall time of the whole check.
    """

    step_name: str
    kind: str
    target_name: str
    target: DiscreteTarget
    false_fail_rate: float
    tv_alternative: float
    outcomes: list = field(default_factory=list)
    error: str | None = None
    observed: np.ndarray | None = None
    expected: np.ndarray | None = None
    budget: float | None = None
    scale: float = 1.0
    seconds: float = 0.0

    @property
    def tv_distance(self) -> float:
        """Deprecated old name of :attr:`tv_alternative` (one name for the TV alternative, as in
        :mod:`textsampling.testing`)."""
        warnings.warn(
            "CheckReport.tv_distance is deprecated; use CheckReport.tv_alternative", DeprecationWarning, stacklevel=2
        )
        return self.tv_alternative

    @property
    def passed(self) -> bool:
        return self.error is None and all(outcome.result.passed for outcome in self.outcomes)

    @property
    def p_values(self) -> dict:
        return {outcome.result.name: outcome.result.p_value for outcome in self.outcomes}

    def state_label(self, index: int) -> str:
        state = self.target.states[index]
        if np.ndim(state) == 0:
            return str(int(state))
        return " ".join("_" if int(t) == PAD else str(int(t)) for t in state)

    def _pair_label(self, label) -> str:
        """``"a->b"`` in cell indices as ``"[state a] -> [state b]"``."""
        parts = str(label).split("->")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return " -> ".join(f"[{self.state_label(int(p))}]" for p in parts)
        return str(label)

    def misfit_rows(self, num_rows: int = 5):
        """The most over- and under-sampled states of the one-step test: (label, observed, expected, ratio)."""
        if self.observed is None:
            return [], []
        expected = self.expected
        residuals = (self.observed - expected) / np.sqrt(np.maximum(expected, 1e-12))
        order = np.argsort(residuals)
        rows = lambda indices: [  # noqa: E731
            (self.state_label(i), int(self.observed[i]), float(expected[i]),
             float(self.observed[i] / expected[i]) if expected[i] > 0 else np.inf)
            for i in indices
        ]
        over = [i for i in order[::-1][:num_rows] if residuals[i] > 0]
        under = [i for i in order[:num_rows] if residuals[i] < 0]
        return rows(over), rows(under)

    def format(self) -> str:
        """The report printed by ``textsampling check``."""
        verdict = "PASSES" if self.passed else "FAILS"
        lines = [
            f"textsampling check: {self.step_name} (kind {self.kind}, target {self.target_name}: "
            f"{TARGETS[self.target_name][0]})",
        ]
        if self.error is not None:
            lines += [f"  malformed step function: {self.error}", f"verdict: {verdict}"]
            return "\n".join(lines)
        share = self.false_fail_rate / max(len(self.outcomes), 1)
        for outcome in self.outcomes:
            result = outcome.result
            lines.append(
                f"  {result.name:<20} {'passed' if result.passed else 'FAILED':<7} p-value {result.p_value:<10.3g}"
                f"(fails below {share:.2g})  N = {result.num_samples:<6} power {result.power:.3f} at TV "
                f"{self.tv_alternative:g}  [{outcome.seconds:.1f} s]"
            )
            if outcome.detail:
                lines.append(f"  {'':<20} {outcome.detail}")
        if self.scale < 1.0:
            lines.append(
                f"  budget {self.budget:g} s: sample sizes scaled by {self.scale:.2f}; the powers above are "
                "what remains (raise --budget, or leave it out for the fixed sizes)"
            )
        elif self.budget is not None:
            lines.append(f"  budget {self.budget:g} s: not binding, the fixed sample sizes ran")
        lines.append(
            f"  false-fail rate {self.false_fail_rate:g}: a correct sampler fails this check with probability "
            f"at most {self.false_fail_rate:g} ({len(self.outcomes)} tests at {share:.2g} each)"
        )
        if not self.passed:
            over, under = self.misfit_rows()
            if over or under:
                lines.append("  one step from exact draws, the states most over- and under-sampled:")
                lines.append(f"    {'state':<14}{'observed':>10}{'expected':>11}{'ratio':>8}")
                for label, observed, expected, ratio in over + under:
                    lines.append(f"    {label:<14}{observed:>10}{expected:>11.1f}{ratio:>8.2f}")
            for outcome in self.outcomes:
                result = outcome.result
                if not result.passed and result.test == "reversibility":
                    pairs = ", ".join(
                        f"{self._pair_label(label)}: {obs} vs {exp:.1f}" for label, obs, exp in result.over_sampled[:3]
                    )
                    lines.append(f"  reversibility: moves seen more often than their reverse: {pairs}")
        lines.append(f"verdict: {verdict}  ({self.seconds:.1f} s)")
        return "\n".join(lines)

    def plot(self, path) -> Path:
        """Bar plot of observed vs expected frequencies after one step, with standardised residuals."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        num_shown = min(self.target.num_states, MAX_PLOTTED_STATES)
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.25 * num_shown + 2), 6),
                                             sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        if self.observed is None:
            top.text(0.5, 0.5, self.error or "no one-step samples", ha="center", va="center", wrap=True)
        else:
            order = np.argsort(-self.expected, kind="stable")[:num_shown]
            positions = np.arange(order.size)
            total = self.observed.sum()
            top.bar(positions - 0.2, self.expected[order] / total, width=0.4, label="target pi")
            top.bar(positions + 0.2, self.observed[order] / total, width=0.4, label="after one step")
            top.set_ylabel("frequency")
            top.legend()
            residuals = (self.observed - self.expected) / np.sqrt(np.maximum(self.expected, 1e-12))
            bottom.bar(positions, residuals[order], color=np.where(residuals[order] > 0, "tab:red", "tab:blue"))
            bottom.axhline(0.0, color="black", linewidth=0.8)
            bottom.set_ylabel("(obs - exp) / sqrt(exp)")
            bottom.set_xticks(positions)
            bottom.set_xticklabels([self.state_label(i) for i in order], rotation=90, fontsize=7)
            total = self.target.num_states
            shown = "" if num_shown == total else f"; the {num_shown} most probable of {total}"
            bottom.set_xlabel(f"state (most probable first{shown})")
        top.set_title(f"{self.step_name}: {self.kind} on {self.target_name} — {'passes' if self.passed else 'FAILS'}")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path
