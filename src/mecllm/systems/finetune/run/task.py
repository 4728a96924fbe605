"""The task: review sentiment with negation and contrast, generated from a seed (no download).

Each sentence names a product and says how it was; the label is the sentiment of the *final*
judgement. Negations ("was not great"), contrasts ("looked cheap, but it turned out great") and
hedges ("nobody would call it awful") flip the surface words, which a frozen sentence encoder
with a prototype head gets wrong often: the adapters must learn to read the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSITIVE = ["great", "excellent", "wonderful", "superb", "reliable", "delightful", "sturdy"]
NEGATIVE = ["terrible", "awful", "useless", "flimsy", "disappointing", "broken", "dreadful"]
ITEMS = ["phone", "laptop", "blender", "jacket", "camera", "headset", "kettle", "backpack",
         "router", "watch", "lamp", "drill"]  # fmt: skip
#: Class descriptions of the frozen prototype head; class 0 negative, 1 positive.
CLASS_TEXTS = ("a negative review: the product was bad", "a positive review: the product was good")


@dataclass(frozen=True)
class Example:
    """One labelled sentence (label 1 positive, 0 negative)."""

    text: str
    label: int


def _sentence(rng: np.random.Generator) -> Example:
    item = str(rng.choice(ITEMS))
    label = int(rng.integers(0, 2))
    good, bad = str(rng.choice(POSITIVE)), str(rng.choice(NEGATIVE))
    final, other = (good, bad) if label == 1 else (bad, good)
    form = int(rng.integers(0, 5))
    if form == 0:
        text = f"the {item} was {final}"
    elif form == 1:
        text = f"the {item} was not {other} at all"
    elif form == 2:
        text = f"at first the {item} seemed {other}, but in the end it was {final}"
    elif form == 3:
        text = f"nobody who used this {item} would call it {other}"
    else:
        text = f"i was told the {item} would be {final}, and it really was"
    return Example(text, label)


def make_split(seed: int, n_train: int, n_test: int) -> tuple[list[Example], list[Example]]:
    """A user's training and held-out sets, drawn from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    train = [_sentence(rng) for _ in range(n_train)]
    test = [_sentence(rng) for _ in range(n_test)]
    return train, test
