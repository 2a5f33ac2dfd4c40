"""Decoding baselines: exact sentence laws on the bigram oracle, twins == references, and greedy/beam
search identical to transformers' ``generate`` on a tiny random-init GPT-2 built here."""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import counter_uniforms
from textsampling.reference import decoding
from textsampling.targets import PAD, BigramLM
from textsampling.testing.statistics import chi_square_counts_test
from textsampling.torch import decoding as decoding_twin

FALSE_FAIL_RATE = 1e-4  # per statistical test
NUM_SENTENCES = 20_000


def _oracle(seed=5, vocab_size=4, max_length=3):
    rng = np.random.default_rng(seed)
    bigram = BigramLM(rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length)
    return BigramOracle(bigram)


def _filtered(row, temperature, top_k, top_p):
    """Next-outcome law written out independently: p^(1/T); k most probable; smallest set of mass >= p."""
    p = np.exp(row / temperature - logsumexp(row / temperature))
    order = sorted(range(len(p)), key=lambda v: -p[v])
    keep = set(order[:top_k]) if top_k else set(order)
    p = np.array([p[v] if v in keep else 0.0 for v in range(len(p))])
    p /= p.sum()
    if top_p is not None:
        kept, mass = set(), 0.0
        for v in sorted(range(len(p)), key=lambda v: -p[v]):
            if mass >= top_p:
                break
            kept.add(v)
            mass += p[v]
        p = np.array([p[v] if v in kept else 0.0 for v in range(len(p))])
        p /= p.sum()
    return p


def _exact_sentence_law(oracle, length, temperature=1.0, top_k=None, top_p=None):
    """{sentence tuple (END-terminated, or cut at `length` tokens): probability} from the bigram's parameters."""
    bigram, vocab = oracle.bigram, oracle.num_tokens
    law = {}
    for n in range(1, length + 1):
        for sentence in itertools.product(range(vocab), repeat=n):
            probability, previous = 1.0, None
            for token in sentence:
                row = np.append(bigram.log_initial, -np.inf) if previous is None else bigram.log_transition[previous]
                probability *= _filtered(row, temperature, top_k, top_p)[token]
                previous = token
            if n == length:  # the last allowed token: the sentence is cut, END is never drawn
                law[sentence + ("cut",)] = probability
            else:
                row = _filtered(bigram.log_transition[previous], temperature, top_k, top_p)
                law[sentence] = probability * row[vocab]
    return law


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(1.0, None, None), (0.6, None, None), (1.0, 2, None), (1.0, None, 0.7), (1.4, 3, 0.8)]
)
def test_sampling_modes_follow_their_exact_sentence_laws(temperature, top_k, top_p):
    """Chi-square over sentences (small cells pooled by the kit); false-fail rate 1e-4 each."""
    oracle = _oracle()
    length = oracle.max_length
    uniforms = torch.as_tensor(counter_uniforms(17, np.arange(NUM_SENTENCES), 0, length))
    result = decoding_twin.decode(uniforms, oracle, temperature, top_k, top_p)
    law = _exact_sentence_law(oracle, length, temperature, top_k, top_p)
    keys = list(law)
    index = {key: i for i, key in enumerate(keys)}
    counts = np.zeros(len(keys))
    for tokens, ended in zip(result.tokens.numpy(), result.ended.numpy()):
        sentence = tuple(int(t) for t in tokens if t != PAD)
        counts[index[sentence if ended else sentence + ("cut",)]] += 1
    cells = np.repeat(np.arange(len(keys)), counts.astype(np.int64))  # the cell of each sentence
    probabilities = np.array([law[k] for k in keys])
    # The kit's test: a sentence the law excludes fails it at once; small cells pooled by probability.
    result = chi_square_counts_test(cells, probabilities, false_fail_rate=FALSE_FAIL_RATE)
    assert result.passed, result
    if (temperature, top_k, top_p) == (1.0, None, None):
        # Test of the test: the same samples against the tempered law are rejected.
        wrong = _exact_sentence_law(oracle, length, temperature=0.6)
        wrong_result = chi_square_counts_test(
            cells, np.array([wrong[k] for k in keys]), false_fail_rate=FALSE_FAIL_RATE
        )
        assert not wrong_result.passed, wrong_result


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 0.5, "top_k": 3}, {"top_p": 0.6}, {"greedy": True}])
def test_decoding_twin_equals_reference(kwargs):
    oracle = _oracle(vocab_size=6, max_length=5)
    uniforms = counter_uniforms(2, np.arange(12), 0, 5)
    twin = decoding_twin.decode(torch.as_tensor(uniforms), oracle, **kwargs)
    for c in range(12):
        reference = decoding.decode(uniforms[c], oracle, 5, **kwargs)
        np.testing.assert_array_equal(twin.tokens[c].numpy(), reference.tokens)
        assert bool(twin.ended[c]) == reference.ended


@pytest.mark.parametrize(
    "kwargs, match", [({"temperature": 0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 1.5}, "top_p")]
)
def test_decoding_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        decoding.decode([0.5, 0.5], _oracle(), 2, **kwargs)


# ----------------------------------------------------------------------------- against transformers
class _RawCausalLM:
    """The whole-vocabulary log-softmax of a GPT-2 behind the CausalLanguageModel protocol (test-local):
    exactly the scores transformers' generate ranks, so the comparison is of the search rules only."""

    def __init__(self, model, bos, eos):
        self.model, self.bos, self.end_token_id = model, bos, eos
        self.vocab_size = model.config.vocab_size
        self.special_token_ids = frozenset({eos})
        self.max_length = model.config.n_positions - 1

    def next_token_log_probs_torch(self, token_ids):
        token_ids = torch.as_tensor(token_ids)
        lengths = (token_ids != PAD).sum(dim=1)
        inputs = torch.cat([torch.full((token_ids.shape[0], 1), self.bos), token_ids.clamp(min=0)], dim=1)
        with torch.no_grad():
            logits = self.model(inputs).logits.float()  # (N, W+1, V); positions after the prefix are ignored
        last = logits[torch.arange(inputs.shape[0]), lengths]  # (N, V) after BOS + prefix
        return torch.log_softmax(last, dim=-1).double()

    def next_token_log_probs(self, token_ids):
        return self.next_token_log_probs_torch(np.asarray(token_ids)).numpy()


@pytest.fixture(scope="module")
def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the test's own model weights; the library never seeds
    # initializer_range 0.4 (not 0.02): peaked next-token laws, so beams diverge and END comes at various
    # lengths (with END = 36 or 25 the four settings below return sentences of 4 to 12 tokens).
    config = GPT2Config(vocab_size=40, n_positions=32, n_embd=32, n_layer=2, n_head=2, initializer_range=0.4)
    model = GPT2LMHeadModel(config).eval()
    torch.random.set_rng_state(torch_state)
    return model


@pytest.mark.parametrize("end", [36, 25])
@pytest.mark.parametrize("num_beams, length_penalty", [(1, 1.0), (3, 1.0), (4, 0.5), (5, 2.0)])
def test_greedy_and_beam_search_equal_transformers_generate(tiny_gpt2, num_beams, length_penalty, end):
    lm = _RawCausalLM(tiny_gpt2, bos=0, eos=end)
    max_new_tokens = 12
    prompt = torch.tensor([[0]])
    with torch.no_grad():
        hf = tiny_gpt2.generate(
            prompt, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, early_stopping=False,
            length_penalty=length_penalty, eos_token_id=end, pad_token_id=end,
        )[0, 1:].tolist()
    hf_content = hf[: hf.index(end)] if end in hf else hf
    if num_beams == 1:
        ours = decoding.decode(np.full(max_new_tokens, 0.5), lm, max_new_tokens, greedy=True).tokens
    else:
        ours = decoding.beam_search(lm, num_beams, max_new_tokens, length_penalty).tokens
        twin = decoding_twin.beam_search(lm, num_beams, max_new_tokens, length_penalty).tokens
        np.testing.assert_array_equal(twin, ours)
    assert [int(t) for t in ours if t != PAD] == hf_content


# ----------------------------------------------------------------------------- exact sequence laws
EXACT_SETTINGS = [
    (1.0, None, None),
    (0.6, None, None),
    (1.7, None, None),
    (1.0, 2, None),
    (1.0, None, 0.7),
    (1.4, 3, 0.8),
]


def _law_as_dict(law):
    """{sentence tuple, with "cut" appended when END was not drawn: probability}, the form of _exact_sentence_law."""
    out = {}
    for tokens, ended, log_prob in zip(law.tokens, law.ended, law.log_probs):
        sentence = tuple(int(t) for t in tokens if t != PAD)
        out[sentence if ended else sentence + ("cut",)] = float(np.exp(log_prob))
    return out


@pytest.mark.parametrize("temperature, top_k, top_p", EXACT_SETTINGS)
def test_exact_sequence_law_sums_to_one_and_matches_the_written_out_law(temperature, top_k, top_p):
    oracle = _oracle()
    law = decoding.exact_sequence_law(oracle, oracle.max_length, temperature, top_k, top_p)
    assert abs(np.exp(logsumexp(law.log_probs)) - 1.0) < 1e-12
    exact = _exact_sentence_law(oracle, oracle.max_length, temperature, top_k, top_p)
    written_out = {key: value for key, value in exact.items() if value > 0}
    ours = _law_as_dict(law)
    assert set(ours) == set(written_out)  # same support: truncation removes the same sentences
    for key, value in written_out.items():
        assert abs(ours[key] - value) < 1e-12, key


def test_ancestral_law_is_the_model_sentence_law():
    """Ended outcomes: p(x, END) = exp(sequence_log_probs); cut ones: p(x_1..x_L) from the bigram's parameters."""
    oracle = _oracle(seed=11, vocab_size=3, max_length=4)
    law = decoding.exact_sequence_law(oracle, 4)
    assert len(law.log_probs) == sum(3**n for n in range(1, 5))  # every sentence has positive probability here
    ended_rows = law.tokens[law.ended]
    np.testing.assert_allclose(
        np.exp(law.log_probs[law.ended]), np.exp(oracle.sequence_log_probs(ended_rows)), rtol=0, atol=1e-12
    )
    bigram = oracle.bigram
    for tokens, log_prob in zip(law.tokens[~law.ended], law.log_probs[~law.ended]):
        transitions = sum(bigram.log_transition[a, b] for a, b in zip(tokens[:-1], tokens[1:]))
        prefix = bigram.log_initial[tokens[0]] + transitions
        assert abs(np.exp(log_prob) - np.exp(prefix)) < 1e-12


def test_temperature_law_is_not_the_tempered_joint():
    """The per-step tempered law differs from p^(1/T)/Z over the same outcomes (and equals it at T = 1)."""
    oracle = _oracle()
    ancestral = decoding.exact_sequence_law(oracle, oracle.max_length)
    for temperature in (0.6, 1.7):
        per_step = decoding.exact_sequence_law(oracle, oracle.max_length, temperature=temperature)
        assert np.array_equal(per_step.tokens, ancestral.tokens) and np.array_equal(per_step.ended, ancestral.ended)
        joint = ancestral.log_probs / temperature
        joint = joint - logsumexp(joint)
        assert np.max(np.abs(per_step.log_probs - joint)) > 0.05


def test_greedy_and_beam_laws_are_point_masses_at_what_decode_and_beam_search_return():
    oracle = _oracle(vocab_size=6, max_length=5)
    greedy = decoding.exact_sequence_law(oracle, 5, greedy=True)
    assert greedy.log_probs.tolist() == [0.0]
    np.testing.assert_array_equal(greedy.tokens[0], decoding.decode(np.full(5, 0.5), oracle, 5, greedy=True).tokens)
    beam = decoding.exact_sequence_law(oracle, 5, num_beams=3)
    assert beam.log_probs.tolist() == [0.0]
    np.testing.assert_array_equal(beam.tokens[0], decoding.beam_search(oracle, 3, 5).tokens)
    with pytest.raises(ValueError, match="greedy and num_beams"):
        decoding.exact_sequence_law(oracle, 5, greedy=True, num_beams=3)


def test_sequence_law_tv_distance_over_the_union_of_supports():
    oracle = _oracle()
    ancestral = decoding.exact_sequence_law(oracle, 3)
    top_1 = decoding.exact_sequence_law(oracle, 3, top_k=1)  # the greedy sentence, as a (degenerate) sampler
    greedy = decoding.exact_sequence_law(oracle, 3, greedy=True)
    assert ancestral.tv_distance(ancestral) == 0.0
    assert top_1.tv_distance(greedy) < 1e-12
    expected = 1.0 - ancestral.probabilities_of(greedy.tokens, greedy.ended)[0]  # TV to a point mass
    assert abs(ancestral.tv_distance(greedy) - expected) < 1e-12
    assert abs(greedy.tv_distance(ancestral) - expected) < 1e-12


def _chi_square_pvalue(law, tokens, ended):
    """Chi-square of decoded outcomes against ``law`` (cells with expected count < 5 pooled); every
    outcome outside the support makes the p-value 0."""
    rows = law.index(tokens, ended)
    if np.any(rows < 0):
        return 0.0
    counts = np.bincount(rows, minlength=len(law.log_probs)).astype(float)
    expected = len(rows) * law.probabilities()
    small = expected < 5
    observed = np.append(counts[~small], counts[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return stats.chisquare(observed, expected).pvalue


def _twin_outcomes(oracle, num_sentences, seed, **kwargs):
    """``num_sentences`` outcomes of the torch twin's decode (equal to the reference's decision by decision,
    test_decoding_twin_equals_reference), one batched model call per position."""
    uniforms = torch.as_tensor(counter_uniforms(seed, np.arange(num_sentences), 0, oracle.max_length))
    result = decoding_twin.decode(uniforms, oracle, **kwargs)
    return result.tokens.numpy(), result.ended.numpy()


@pytest.mark.parametrize("temperature, top_k, top_p", EXACT_SETTINGS)
def test_decode_follows_exact_sequence_law(temperature, top_k, top_p):
    """Decoded sentences against `exact_sequence_law`: chi-square, false-fail rate 1e-4 per setting, fixed seed."""
    oracle = _oracle()
    tokens, ended = _twin_outcomes(oracle, NUM_SENTENCES, 29, temperature=temperature, top_k=top_k, top_p=top_p)
    law = decoding.exact_sequence_law(oracle, oracle.max_length, temperature, top_k, top_p)
    assert _chi_square_pvalue(law, tokens, ended) > FALSE_FAIL_RATE


#: The reference decode is ~1000x slower than the batched twin: fewer sentences (power stated below).
NUM_REFERENCE_SENTENCES = 2_000


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (0.6, 3, 0.8)])
def test_reference_decode_follows_exact_sequence_law(temperature, top_k, top_p):
    """`decoding.sample` (the reference `decode`) against `exact_sequence_law`: chi-square, false-fail rate 1e-4."""
    oracle = _oracle()
    rng = np.random.default_rng(23)
    tokens, ended = decoding.sample(rng, oracle, NUM_REFERENCE_SENTENCES, oracle.max_length, temperature, top_k, top_p)
    law = decoding.exact_sequence_law(oracle, oracle.max_length, temperature, top_k, top_p)
    assert _chi_square_pvalue(law, tokens, ended) > FALSE_FAIL_RATE


def test_the_exact_law_test_rejects_a_wrong_law():
    """Test of the test: the same chi-square rejects (p < 1e-4) per-step tempered sentences scored against the
    tempered *joint* p^(1/T)/Z (TV 0.14 apart here; non-centrality 2000 at 20,000 sentences, about 200 at the
    reference's 2,000: power above 1 - 1e-7 either way), ancestral sentences against the tempered law, and
    ancestral sentences against top-2's law (they leave its support)."""
    oracle = _oracle()
    length = oracle.max_length
    ancestral = decoding.exact_sequence_law(oracle, length)
    tempered = decoding.exact_sequence_law(oracle, length, temperature=0.6)
    tempered_joint = ancestral._replace(log_probs=ancestral.log_probs / 0.6 - logsumexp(ancestral.log_probs / 0.6))
    assert tempered.tv_distance(tempered_joint) > 0.1
    tokens, ended = _twin_outcomes(oracle, NUM_SENTENCES, 29, temperature=0.6)
    assert _chi_square_pvalue(tempered, tokens, ended) > FALSE_FAIL_RATE  # the right law passes on these samples
    assert _chi_square_pvalue(tempered_joint, tokens, ended) < FALSE_FAIL_RATE
    tokens, ended = decoding.sample(np.random.default_rng(23), oracle, NUM_REFERENCE_SENTENCES, length, temperature=0.6)
    assert _chi_square_pvalue(tempered_joint, tokens, ended) < FALSE_FAIL_RATE
    tokens, ended = _twin_outcomes(oracle, NUM_SENTENCES, 29)
    assert _chi_square_pvalue(tempered, tokens, ended) < FALSE_FAIL_RATE
    assert _chi_square_pvalue(decoding.exact_sequence_law(oracle, length, top_k=2), tokens, ended) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_new_tokens": 0}, "max_new_tokens"), ({"top_p": 0.0}, "top_p"), ({"temperature": -1}, "temperature")],
)
def test_exact_sequence_law_bad_settings_name_the_argument(kwargs, match):
    arguments = {"max_new_tokens": 2} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        decoding.exact_sequence_law(_oracle(), **arguments)
