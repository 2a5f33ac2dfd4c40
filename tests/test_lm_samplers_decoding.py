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
from textsampling.torch import decoding as decoding_twin

FALSE_FAIL_RATE = 1e-4  # per statistical test
NUM_SENTENCES = 20_000


def _oracle(seed=5, vocab_size=4, max_length=3):
    rng = np.random.default_rng(seed)
    return BigramOracle(BigramLM(rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length))


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
                law[sentence] = probability * _filtered(bigram.log_transition[previous], temperature, top_k, top_p)[vocab]
    return law


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(1.0, None, None), (0.6, None, None), (1.0, 2, None), (1.0, None, 0.7), (1.4, 3, 0.8)]
)
def test_sampling_modes_follow_their_exact_sentence_laws(temperature, top_k, top_p):
    """Chi-square over sentences (cells with expected count < 5 pooled); false-fail rate 1e-4 each."""
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
    expected = NUM_SENTENCES * np.array([law[k] for k in keys])
    assert np.all(counts[expected == 0] == 0)  # truncation never produces an excluded sentence
    small = expected < 5
    observed = np.append(counts[~small], counts[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    assert stats.chisquare(observed, expected).pvalue > FALSE_FAIL_RATE
    if (temperature, top_k, top_p) == (1.0, None, None):
        # Test of the test: the same samples against the tempered law are rejected.
        wrong = _exact_sentence_law(oracle, length, temperature=0.6)
        wrong_expected = NUM_SENTENCES * np.array([wrong[k] for k in keys])
        keep = wrong_expected >= 5
        pooled = np.append(wrong_expected[keep], wrong_expected[~keep].sum())
        assert stats.chisquare(np.append(counts[keep], counts[~keep].sum()), pooled).pvalue < FALSE_FAIL_RATE


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 0.5, "top_k": 3}, {"top_p": 0.6}, {"greedy": True}])
def test_decoding_twin_equals_reference(kwargs):
    oracle = _oracle(vocab_size=6, max_length=5)
    uniforms = counter_uniforms(2, np.arange(12), 0, 5)
    twin = decoding_twin.decode(torch.as_tensor(uniforms), oracle, **kwargs)
    for c in range(12):
        reference = decoding.decode(uniforms[c], oracle, 5, **kwargs)
        np.testing.assert_array_equal(twin.tokens[c].numpy(), reference.tokens)
        assert bool(twin.ended[c]) == reference.ended


@pytest.mark.parametrize("kwargs, match", [({"temperature": 0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 1.5}, "top_p")])
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
