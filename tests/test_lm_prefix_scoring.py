"""Prefix reuse in CGMH's candidate scoring: the same scores as full rescoring, the same decisions.

:meth:`HFCausalLM.prefix_scorer_torch` runs each chain's sentence once (kept by the model for the next call
on the same sentences) and continues the candidate sentences from its prefix's keys and values;
:class:`textsampling.lm.base.PrefixScorer` (the default, what a model without
a cache gets) scores every sentence through the whole model. The attention sums run over the same keys
in another order of operations, so the scores agree to float32 rounding (measured below 1e-5 on
log-probabilities of tens), not bit for bit; the CGMH twin then takes the same decisions on a seeded
run, compared decision by decision (a flip would need a near-tie at the 1e-5 level: none occurs on
these fixed seeds).
"""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from textsampling.lm import hf_causal  # noqa: E402
from textsampling.lm.base import FullRescoring, PrefixScorer, prefix_scorer_torch  # noqa: E402
from textsampling.lm.loading import load_causal_lm  # noqa: E402
from textsampling.lm.oracle import BigramOracle  # noqa: E402
from textsampling.lm.tokens import PAD  # noqa: E402
from textsampling.reference.cgmh import make_config  # noqa: E402
from textsampling.targets.sequences import BigramLM  # noqa: E402
from textsampling.torch import cgmh, sentence_annealing  # noqa: E402
from textsampling.torch.randomness import CounterGenerator  # noqa: E402

LINES = [
    "now is the winter of our discontent made glorious summer by this sun of york",
    "to be, or not to be, that is the question",
    "my lord, i pray you",
    "o romeo",
    "friends, romans, countrymen, lend me your ears; i come to bury caesar",
]
#: float32 log-probabilities of a few tens: rounding-level agreement (measured: below 1e-5)
ATOL = 1e-4


@pytest.fixture(scope="module")
def shakespeare_causal():
    return load_causal_lm("tiny-shakespeare")


def _sentences_at(x: torch.Tensor, prefix_lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Per row ``b``: replaces at p_b, inserts at slot p_b, the deletion of x_{p_b}, x itself: ``(B, 6, L)``."""
    rows = []
    for b in range(x.shape[0]):
        sentence = [int(t) for t in x[b] if t != PAD]
        p = int(prefix_lengths[b])
        group = []
        for token in (101, 202):  # replace at p (x itself when p is the end: nothing to replace)
            group.append(sentence[:p] + [token] + sentence[p + 1:] if p < len(sentence) else sentence)
        for token in (303, 404):  # insert at slot p, cut to the maximum as the twin's insert drops the last entry
            group.append((sentence[:p] + [token] + sentence[p:])[:max_length])
        group.append(sentence[:p] + sentence[p + 1:] if len(sentence) > 1 else sentence)  # delete x_p (or none)
        group.append(sentence)
        rows.append([row + [PAD] * (max_length - len(row)) for row in group])
    return torch.tensor(rows, dtype=torch.int64)


@pytest.mark.parametrize("call_positions", [0, 64, 10**9])  # one batch per length, the tuned split, one batch
def test_cached_prefix_scores_equal_full_rescoring(shakespeare_causal, monkeypatch, call_positions):
    lm = shakespeare_causal
    monkeypatch.setattr(hf_causal, "CPU_CALL_POSITIONS", call_positions)
    max_length = 16
    x = torch.as_tensor(lm.encode(LINES))[:, :max_length]  # (5, 16): lengths 16, 12, 6, 2, 16
    lengths = (x != PAD).sum(dim=1)
    # an empty prefix, prefixes inside, the whole sentence (inserts at the end, deletion of the last token)
    for prefix_lengths in (torch.tensor([0, 3, 5, 2, 15]), lengths.clone(), torch.tensor([7, 0, 1, 1, 16])):
        sentences = _sentences_at(x, prefix_lengths, max_length)  # (5, 6, 16)
        full = PrefixScorer(lm, x, prefix_lengths)
        cached = lm.prefix_scorer_torch(x, prefix_lengths)
        assert isinstance(cached, hf_causal.CachedPrefixScorer)
        finite = torch.isfinite(full.next_token_log_probs)
        assert torch.equal(finite, torch.isfinite(cached.next_token_log_probs))
        np.testing.assert_allclose(cached.next_token_log_probs[finite].numpy(),
                                   full.next_token_log_probs[finite].numpy(), rtol=0, atol=ATOL)
        expected = lm.sequence_log_probs_torch(sentences.reshape(-1, max_length)).reshape(5, 6)
        np.testing.assert_array_equal(full.sequence_log_probs(sentences).numpy(), expected.numpy())
        scores = cached.sequence_log_probs(sentences)  # (5, 6)
        assert scores.shape == (5, 6) and bool(torch.isfinite(scores).all())
        np.testing.assert_allclose(scores.numpy(), expected.numpy(), rtol=0, atol=ATOL)
        # x itself, continued from its own prefix, is scored as x
        np.testing.assert_allclose(scores[:, 5].numpy(), lm.sequence_log_probs_torch(x).numpy(), rtol=0, atol=ATOL)


def test_a_prefix_scorer_can_be_asked_twice_and_keeps_its_prefixes(shakespeare_causal):
    """Each call continues from its own copy of the cache: a second call sees the prefixes unchanged."""
    lm = shakespeare_causal
    x = torch.as_tensor(lm.encode(LINES[:3]))[:, :16]
    prefix_lengths = torch.tensor([4, 2, 3])
    sentences = _sentences_at(x, prefix_lengths, 16)
    cached = lm.prefix_scorer_torch(x, prefix_lengths)
    first = cached.sequence_log_probs(sentences)
    np.testing.assert_array_equal(cached.sequence_log_probs(sentences[:, 2:]).numpy(), first[:, 2:].numpy())


def test_prefix_scorers_refuse_sentences_outside_their_prefixes(shakespeare_causal):
    lm = shakespeare_causal
    x = torch.as_tensor(lm.encode(LINES[:2]))[:, :16]
    prefix_lengths = torch.tensor([3, 2])
    for scorer in (lm.prefix_scorer_torch(x, prefix_lengths), PrefixScorer(lm, x, prefix_lengths)):
        sentences = _sentences_at(x, prefix_lengths, 16)
        sentences[1, 0, 1] = 77  # inside prefix 1
        with pytest.raises(ValueError, match="sentences: every sentence of group b must start"):
            scorer.sequence_log_probs(sentences)
        with pytest.raises(ValueError, match="sentences must be a"):
            scorer.sequence_log_probs(sentences[0])
    with pytest.raises(ValueError, match="prefix_lengths must lie in 0"):
        lm.prefix_scorer_torch(x, torch.tensor([3, 40]))
    with pytest.raises(ValueError, match="prefix_lengths must be"):
        lm.prefix_scorer_torch(x, torch.tensor([3]))


def test_a_model_without_a_prefix_scorer_is_rescored_in_full():
    """The bigram oracle has no ``prefix_scorer_torch``: the default scores through its own methods, exactly."""
    oracle = BigramOracle(BigramLM.random(np.random.default_rng(3), 4, max_length=5))
    x = torch.tensor([[0, 1, 2, PAD, PAD], [3, 3, PAD, PAD, PAD]])
    scorer = prefix_scorer_torch(oracle, x, torch.tensor([1, 2]))
    assert type(scorer) is PrefixScorer
    prefixes = torch.tensor([[0, PAD, PAD, PAD, PAD], [3, 3, PAD, PAD, PAD]])
    np.testing.assert_array_equal(scorer.next_token_log_probs.numpy(), oracle.next_token_log_probs(prefixes.numpy()))
    sentences = torch.tensor([[[0, 2, 2, PAD, PAD], [0, 1, PAD, PAD, PAD]],
                              [[3, 3, 0, PAD, PAD], [3, 3, PAD, PAD, PAD]]])
    np.testing.assert_array_equal(scorer.sequence_log_probs(sentences).numpy(),
                                  oracle.sequence_log_probs(sentences.reshape(4, 5).numpy()).reshape(2, 2))


def _run(step, state, configs, num_steps, num_chains, **kwargs):
    """Both configurations from the same state with the same uniforms: lists of (state, info) per step."""
    runs = []
    for config in configs:
        generator, current, out = CounterGenerator(11, torch.arange(num_chains)), state, []
        for t in range(num_steps):
            extra = {name: value[t] for name, value in kwargs.items()}
            current, info = step(generator.uniforms(t, 4, dtype=torch.float64), current, config, **extra)
            out.append((current, info))
        runs.append(out)
    return runs


def _assert_same_decisions(full_run, cached_run) -> int:
    accepted = 0
    for (full_state, full_info), (cached_state, cached_info) in zip(full_run, cached_run):
        for name in ("move", "position", "proposal", "accepted"):
            assert torch.equal(getattr(full_info, name), getattr(cached_info, name)), name
        assert torch.equal(full_state.x, cached_state.x)
        np.testing.assert_allclose(cached_state.log_prob.numpy(), full_state.log_prob.numpy(), rtol=0, atol=ATOL)
        finite = torch.isfinite(full_info.log_accept_prob)
        assert torch.equal(finite, torch.isfinite(cached_info.log_accept_prob))
        np.testing.assert_allclose(cached_info.log_accept_prob[finite].numpy(),
                                   full_info.log_accept_prob[finite].numpy(), rtol=0, atol=ATOL)
        accepted += int(full_info.accepted.sum())
    return accepted


@pytest.mark.parametrize("keywords", [(), "king"])
def test_cgmh_twin_with_prefix_reuse_decides_as_with_full_rescoring(shakespeare_causal, keywords):
    lm = shakespeare_causal
    lines = ["the king is dead and we shall not see his like", "a king of shreds and patches",
             "the king doth wake to-night and takes his rouse", "o king"]
    x0 = torch.as_tensor(lm.encode(lines))[:, :12]
    keyword_ids = [lm.encode([keywords])[0].tolist()] if keywords else []
    configs = [make_config(model, keyword_ids, num_candidates=20, max_length=12, gamma=0.8)
               for model in (FullRescoring(lm), lm)]
    state = cgmh.init(x0, configs[0])
    full_run, cached_run = _run(cgmh.step, state, configs, 25, 4)
    accepted = _assert_same_decisions(full_run, cached_run)
    moves = {int(m) for _, info in full_run for m in info.move[info.accepted]}
    assert accepted >= 10 and moves == {cgmh.REPLACE, cgmh.INSERT, cgmh.DELETE}  # every move type decided


def test_sentence_annealing_twin_with_prefix_reuse_decides_as_with_full_rescoring(shakespeare_causal):
    lm = shakespeare_causal
    x0 = torch.as_tensor(lm.encode(LINES[1:4]))[:, :10]
    configs = [make_config(model, (), num_candidates=20, max_length=10) for model in (FullRescoring(lm), lm)]
    state = sentence_annealing.init(x0, configs[0])
    temperatures = np.geomspace(2.0, 0.2, 15)
    full_run, cached_run = _run(sentence_annealing.step, state, configs, 15, 3, temperature=temperatures)
    assert _assert_same_decisions(full_run, cached_run) >= 5


# ----------------------------------------------------------------------------- the kept sentence pass
class _CallCounter:
    """Counts the transformer's forward calls (the scorers call ``base_model`` of the head-only model)."""

    def __init__(self, lm):
        self.count = 0
        self._hook = lm.model.base_model.register_forward_pre_hook(self._seen)

    def _seen(self, *_):
        self.count += 1

    def remove(self):
        self._hook.remove()


def _fresh(lm, token_ids, prefix_lengths, sentences):
    """The scorer's numbers with nothing kept: ``(next_token_log_probs, sequence_log_probs)``."""
    lm._kept_pass = None
    scorer = lm.prefix_scorer_torch(token_ids, prefix_lengths)
    return scorer.next_token_log_probs, scorer.sequence_log_probs(sentences)


def _assert_as_full_rescoring(lm, token_ids, prefix_lengths, sentences, scorer):
    full = PrefixScorer(lm, token_ids, prefix_lengths)
    finite = torch.isfinite(full.next_token_log_probs)
    np.testing.assert_allclose(scorer.next_token_log_probs[finite].numpy(), full.next_token_log_probs[finite].numpy(),
                               rtol=0, atol=ATOL)
    np.testing.assert_allclose(scorer.sequence_log_probs(sentences).numpy(), full.sequence_log_probs(sentences).numpy(),
                               rtol=0, atol=ATOL)


def test_the_kept_pass_serves_the_same_sentences_at_other_positions_with_the_same_numbers(shakespeare_causal):
    """CGMH after a rejection: the same sentences, another position. No model call for the prefixes, and
    numbers bit for bit those of a scorer that ran them again (what makes a resumed run reproduce)."""
    lm = shakespeare_causal
    x = torch.as_tensor(lm.encode(LINES))[:, :16]
    first, second = torch.tensor([0, 3, 5, 2, 15]), torch.tensor([7, 0, 1, 1, 16])
    counter = _CallCounter(lm)  # before the pass is kept: a hook added later would change the key
    try:
        lm.prefix_scorer_torch(x, first)  # keeps the pass over x
        counter.count = 0
        scorer = lm.prefix_scorer_torch(x.clone(), second)
        assert counter.count == 0  # the prefixes ran in the kept pass
    finally:
        counter.remove()
    sentences = _sentences_at(x, second, 16)
    kept = (scorer.next_token_log_probs, scorer.sequence_log_probs(sentences))
    again = _fresh(lm, x, second, sentences)
    assert torch.equal(kept[0], again[0]) and torch.equal(kept[1], again[1])
    _assert_as_full_rescoring(lm, x, second, sentences, scorer)


@pytest.mark.parametrize("change", ["token after the prefix", "token in the prefix", "fewer rows", "rows reordered",
                                    "one token shorter", "wider padding"])
def test_a_kept_pass_is_not_used_for_other_sentences(shakespeare_causal, change):
    """Each change but the last would give wrong scores if the kept pass of ``x`` were read: the sentence's
    own score (its row among the sentences), the shared prefix sum, the next-token law or the keys and
    values. The same sentences in a wider tensor may be run again or not; the scores must be right."""
    lm = shakespeare_causal
    x = torch.as_tensor(lm.encode(LINES))[:, :16]  # lengths 16, 12, 6, 2, 16
    prefix_lengths = torch.tensor([4, 2, 3, 1, 9])
    other, other_lengths = x.clone(), prefix_lengths.clone()
    if change == "token after the prefix":
        other[2, 4] = 101  # row 2 keeps its prefix (3 tokens): only its own score and the suffix differ
    elif change == "token in the prefix":
        other[0, 1] = 101
    elif change == "fewer rows":
        other, other_lengths = x[1:], prefix_lengths[1:]
    elif change == "rows reordered":
        other, other_lengths = x[[1, 0, 2, 3, 4]], prefix_lengths[[1, 0, 2, 3, 4]]
    elif change == "one token shorter":
        other[1, 11] = PAD  # row 1: 11 tokens
    else:
        other = torch.cat([x, torch.full((5, 3), PAD)], dim=1)  # the same sentences, another tensor width
    sentences = _sentences_at(other, other_lengths, 16)
    counter = _CallCounter(lm)  # before the pass is kept: a hook added later would change the key
    try:
        lm.prefix_scorer_torch(x, prefix_lengths)  # keeps the pass over x
        counter.count = 0
        scorer = lm.prefix_scorer_torch(other, other_lengths)
        assert counter.count == 1 or change == "wider padding"  # the pass ran again
    finally:
        counter.remove()
    _assert_as_full_rescoring(lm, other, other_lengths, sentences, scorer)
    fresh = _fresh(lm, other, other_lengths, sentences)
    lm.prefix_scorer_torch(x, prefix_lengths)
    scorer = lm.prefix_scorer_torch(other, other_lengths)
    assert torch.equal(scorer.next_token_log_probs, fresh[0])
    assert torch.equal(scorer.sequence_log_probs(sentences), fresh[1])


def test_a_kept_pass_is_not_used_after_the_weights_change():
    """A weight changed in place (an optimiser step, load_state_dict) or replaced: the pass runs again."""
    lm = load_causal_lm("tiny-shakespeare")  # its own copy: the weights are changed below
    x = torch.as_tensor(lm.encode(LINES[:3]))[:, :16]
    prefix_lengths = torch.tensor([4, 2, 3])
    sentences = _sentences_at(x, prefix_lengths, 16)
    before = lm.prefix_scorer_torch(x, prefix_lengths).sequence_log_probs(sentences)
    layer = lm.model.base_model.h[1].mlp.c_fc
    with torch.no_grad():
        layer.weight.mul_(1.5)  # in place
    changed = lm.prefix_scorer_torch(x, prefix_lengths)
    _assert_as_full_rescoring(lm, x, prefix_lengths, sentences, changed)
    assert not torch.allclose(changed.sequence_log_probs(sentences), before, atol=1e-2)
    layer.weight = torch.nn.Parameter(layer.weight.detach() / 1.5)  # replaced by a new parameter
    replaced = lm.prefix_scorer_torch(x, prefix_lengths)
    _assert_as_full_rescoring(lm, x, prefix_lengths, sentences, replaced)
    np.testing.assert_allclose(replaced.sequence_log_probs(sentences).numpy(), before.numpy(), rtol=0, atol=ATOL)


def test_cgmh_with_the_kept_pass_reproduces_itself_from_any_step(shakespeare_causal, monkeypatch):
    """The kept pass changes no number: a run that keeps nothing (as after a resume in a new process, at
    every step) takes the same decisions with the same scores bit for bit, in more model calls; so does a
    run resumed at step 6."""
    lm = shakespeare_causal
    x0 = torch.as_tensor(lm.encode(LINES[:3]))[:, :12]
    config = make_config(lm, (), num_candidates=20, max_length=12)
    generator = CounterGenerator(5, torch.arange(3))

    def run(state, steps):
        lm._kept_pass = None
        counter, out = _CallCounter(lm), []
        try:
            for t in steps:
                state, info = cgmh.step(generator.uniforms(t, 4, dtype=torch.float64), state, config)
                out.append((state, info))
        finally:
            counter.remove()
        return out, counter.count

    def assert_equal(first, second):
        for (state, info), (other_state, other_info) in zip(first, second, strict=True):
            for name in ("x", "log_prob", "protected"):
                assert torch.equal(getattr(state, name), getattr(other_state, name)), name
            for name in info._fields:
                assert torch.equal(getattr(info, name), getattr(other_info, name)), name

    whole, calls = run(cgmh.init(x0, config), range(12))
    assert sum(int(info.accepted.sum()) for _, info in whole) >= 3
    monkeypatch.setattr(hf_causal, "KEPT_PASS_BYTES", 0)  # nothing kept: every step runs its pass
    unkept, unkept_calls = run(cgmh.init(x0, config), range(12))
    assert_equal(whole, unkept)
    assert calls < unkept_calls
    resumed, _ = run(whole[5][0], range(6, 12))
    assert_equal(whole[6:], resumed)


def test_a_kept_pass_is_not_used_after_the_model_changes_around_its_weights():
    """A submodule replaced (as LoRA-style wrappers do), a forward hook, autocast: the pass runs again.
    A write through ``tensor.data`` is not seen (its own version counter): ``forget_kept_pass`` drops the
    pass, and ``keep_passes = False`` never keeps one."""
    lm = load_causal_lm("tiny-shakespeare")  # its own copy: the model is changed below
    x = torch.as_tensor(lm.encode(LINES[:3]))[:, :16]
    prefix_lengths = torch.tensor([4, 2, 3])
    sentences = _sentences_at(x, prefix_lengths, 16)

    def scores():
        return lm.prefix_scorer_torch(x, prefix_lengths).sequence_log_probs(sentences)

    def differ(first, second):
        return not torch.allclose(first, second, atol=1e-3)

    before = scores()
    block = lm.model.base_model.h[1]
    mlp = block.mlp

    class Scaled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            return self.inner(*args, **kwargs) * 1.5

    block.mlp = Scaled(mlp)
    assert differ(scores(), before)
    _assert_as_full_rescoring(lm, x, prefix_lengths, sentences, lm.prefix_scorer_torch(x, prefix_lengths))
    block.mlp = mlp
    np.testing.assert_allclose(scores().numpy(), before.numpy(), rtol=0, atol=ATOL)
    handle = mlp.register_forward_hook(lambda module, inputs, output: output * 1.5)
    assert differ(scores(), before)
    handle.remove()
    np.testing.assert_allclose(scores().numpy(), before.numpy(), rtol=0, atol=ATOL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert differ(scores(), before)
    np.testing.assert_allclose(scores().numpy(), before.numpy(), rtol=0, atol=ATOL)
    weight = mlp.c_fc.weight
    kept = lm._kept_pass
    weight.data.mul_(1.5)  # not seen by the key: the kept pass is used again (the documented limit)
    scores()
    assert lm._kept_pass is kept
    lm.forget_kept_pass()
    assert differ(scores(), before) and lm._kept_pass is not kept
    _assert_as_full_rescoring(lm, x, prefix_lengths, sentences, lm.prefix_scorer_torch(x, prefix_lengths))
    weight.data.div_(1.5)
    lm.keep_passes = False
    assert differ(scores(), before) is False
    lm.prefix_scorer_torch(x, prefix_lengths)
    assert lm._kept_pass is None
