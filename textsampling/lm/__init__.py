"""Language models for the text samplers of parts 3–4.

* :mod:`textsampling.lm.base` — the interface (:class:`MaskedLanguageModel`, :class:`CausalLanguageModel`);
* :mod:`textsampling.lm.tokens` — the token rules, once: length before PAD, valid sequences, special ids
  never sampled, [MASK] put at the position asked about (NumPy and torch side by side);
* :mod:`textsampling.lm.oracle` — the exact bigram oracle implementing both, for tests;
* :mod:`textsampling.lm.hf_masked`, :mod:`textsampling.lm.hf_causal` — adapters over Hugging Face models;
* :mod:`textsampling.lm.loading` — :func:`load_masked_lm`, :func:`load_causal_lm` (``"tiny-shakespeare"``
  built in and offline), :func:`encode_keywords`;
* :mod:`textsampling.lm.detokenize` — WordPiece tokens -> readers' text ('tis, to-morrow, do't), used by the
  HF adapters' decode;
* :mod:`textsampling.lm.similarity` — an optional sentence-similarity term (extra ``embeddings``).

``transformers`` is imported only when a loader or adapter is used, so ``import textsampling.lm`` is cheap.
"""

from textsampling.lm.base import PAD, CausalLanguageModel, MaskedLanguageModel

__all__ = [
    "PAD",
    "MaskedLanguageModel",
    "CausalLanguageModel",
    "load_masked_lm",
    "load_causal_lm",
    "encode_keywords",
]


def __getattr__(name):
    # lazy: the loaders pull in transformers, which takes seconds to import
    if name in {"load_masked_lm", "load_causal_lm", "encode_keywords"}:
        from textsampling.lm import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'textsampling.lm' has no attribute {name!r}")
