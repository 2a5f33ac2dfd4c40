"""scripts/reproduce_wang_cho.py on a tiny synthetic bert-gen data/ folder: every cell of its table is the
notebook's preparation + NLTK's corpus_bleu / the notebook's n-gram definitions, and it prints the
published figures beside them (the real data are the user's; the script's run on them is in the report)."""

import importlib.util
import json
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce_wang_cho.py"
spec = importlib.util.spec_from_file_location("reproduce_wang_cho", SCRIPT)
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

WORDS = "the King crown queen sword of a and to my lord is fair foul night @@unknown@@ `` ''".split()
CORPUS_SAMPLES = 4


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(5)

    def write(name, count):
        lines = [" ".join(rng.choice(WORDS, rng.integers(4, 12))) for _ in range(count)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")

    for name in reproduce.MODEL_FILES.values():
        write(name, 8)
    for name in reproduce.CORPUS_FILES.values():
        write(name, 11)
    return tmp_path


# the notebook (bert-babble.ipynb), as written there
def prepare_data(data_file, replacements={}, uncased=True):
    data = [d.strip().split() for d in open(data_file, "r").readlines()]
    if uncased:
        data = [[t.lower() for t in sent] for sent in data]
    for k, v in replacements.items():
        data = [[t if t != k else v for t in sent] for sent in data]
    return data


def nltk_corpus_bleu(generated, references):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 100 * nltk_bleu.corpus_bleu([references for _ in range(len(generated))], generated)


def nltk_self_bleu(sents):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 100 * nltk_bleu.corpus_bleu([[s for (j, s) in enumerate(sents) if j != i] for i in range(len(sents))],
                                           sents)


def counts(sents, n):
    return Counter(tuple(s[i : i + n]) for s in sents for i in range(len(s) - n + 1))


def ref_unique(preds, refs, n):
    return 100 * len(set(counts(preds, n)).difference(set(counts(refs, n)))) / sum(counts(preds, n).values())


def self_unique(preds, n):
    return 100 * len([k for k, v in counts(preds, n).items() if v == 1]) / sum(counts(preds, n).values())


def test_every_cell_is_the_notebooks_computation(data, tmp_path, capsys):
    out = tmp_path / "table.json"
    table = reproduce.main(["--data", str(data), "--corpus-samples", str(CORPUS_SAMPLES), "--json", str(out)])
    wiki = prepare_data(data / "wiki103.5k.txt", {"@@unknown@@": "[UNK]"})
    tbc = prepare_data(data / "tbc.5k.txt", {"``": '"', "''": '"'})
    rows = {model: ([line.split() for line in (data / file).read_text().splitlines()], {"WT103": wiki, "TBC": tbc})
            for model, file in reproduce.MODEL_FILES.items()}
    rows["WT103"] = (wiki[:CORPUS_SAMPLES], {"WT103": wiki[CORPUS_SAMPLES:], "TBC": tbc})
    rows["TBC"] = (tbc[:CORPUS_SAMPLES], {"WT103": wiki, "TBC": tbc[CORPUS_SAMPLES:]})
    assert list(table) == list(rows)
    exact = {"rel": 1e-12, "abs": 0.0}
    for row, (samples, corpora) in rows.items():
        assert table[row]["self_bleu"] == pytest.approx(nltk_self_bleu(samples), **exact)
        for name, corpus in corpora.items():
            assert table[row][f"bleu:{name}"] == pytest.approx(nltk_corpus_bleu(samples, corpus), **exact)
            for n in (2, 3, 4):
                assert table[row][f"unique:{name}:{n}"] == pytest.approx(ref_unique(samples, corpus, n), **exact)
        for n in (2, 3, 4):
            assert table[row][f"unique:self:{n}"] == pytest.approx(self_unique(samples, n), **exact)

    printed = capsys.readouterr().out
    assert "10.06" in printed and "57.90" in printed and "n/a" in printed and "not verified" in printed
    gaps = {(row, key): table[row][key] - figure for (row, key), (figure, _) in reproduce.PUBLISHED.items()}
    (row, key), gap = max(gaps.items(), key=lambda item: abs(item[1]))
    assert f"largest difference: {gap:+.2f} ({row}, {dict(reproduce.COLUMNS)[key]})" in printed
    difference_rows = printed.split("ours - published:")[1].splitlines()
    base = next(line for line in difference_rows if line.startswith("BERT (base)"))
    assert f"{gaps[('BERT (base)', 'self_bleu')]:+.2f}" in base.split()
    assert re.search(r"computed in \d+\.\d s", printed)
    document = json.loads(out.read_text())
    assert document["table"]["GPT"]["self_bleu"] == pytest.approx(table["GPT"]["self_bleu"])
    assert document["largest_difference"]["value"] == pytest.approx(gap)


def test_with_cls_sep_wraps_the_bert_samples_only(data):
    plain = reproduce.compute(data, CORPUS_SAMPLES)
    wrapped = reproduce.compute(data, CORPUS_SAMPLES, with_cls_sep=True)
    samples = [["[CLS]", *line.split(), "[SEP]"]
               for line in (data / reproduce.MODEL_FILES["BERT (base)"]).read_text().splitlines()]
    assert wrapped["BERT (base)"]["self_bleu"] == pytest.approx(nltk_self_bleu(samples), rel=1e-12)
    assert wrapped["GPT"] == plain["GPT"] and wrapped["WT103"] == plain["WT103"]


def test_missing_files_and_short_corpora_are_named(data, tmp_path):
    (data / "tbc.5k.txt").unlink()
    with pytest.raises(FileNotFoundError, match="tbc.5k.txt: missing"):
        reproduce.compute(data, CORPUS_SAMPLES)
    (data / "tbc.5k.txt").write_text("a b c d\n" * 3)
    with pytest.raises(ValueError, match="tbc.5k.txt has 3 lines"):
        reproduce.compute(data, CORPUS_SAMPLES)
