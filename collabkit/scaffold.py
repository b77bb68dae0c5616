"""Test scaffolding the notebooks' test cells share. It holds no answers.

Hidden and visible test parts import it as `import collabkit.scaffold as sc`. Everything here builds
inputs or checks the form of an answer; every reference implementation a test compares against
(the answer itself) stays inside that test's hidden part.
"""

from __future__ import annotations


def check_letter(value, name: str, letters: str = "ABCD") -> str:
    """The multiple-choice answer `value` (variable `name`) as one upper-case letter; an
    AssertionError that says what was expected if it is not one of `letters`."""
    ok = isinstance(value, str) and str.upper(str.strip(value)) in set(letters)
    assert ok, (
        f"expected one letter, {', '.join(letters[:-1])} or {letters[-1]}, as a string, "
        f'e.g. {name} = "{letters[0]}", got {value!r}'
    )
    return str.upper(str.strip(value))  # a plain str, whatever a str subclass's own methods say


def tiny_learner(titles, factors, biases, users=None, user_factors=None, user_biases=None):
    """A real fastai collab learner over `titles` (and `users`, default 0..7), whose tables the
    caller sets row by row: row 0 of each is fastai's '#na#', then the sorted vocabulary.

    Every user rates every title 3.0, so the vocabulary is exactly `'#na#'` plus the sorted names.
    The global random state (random, numpy, torch) is the same afterwards as before: building the
    learner must not change what the student's notebook draws next.
    """
    import random

    import numpy as np
    import pandas as pd
    import torch
    from fastai.collab import CollabDataLoaders, collab_learner

    users = list(range(8)) if users is None else list(users)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        frame = pd.DataFrame(
            {"user": [u for _ in titles for u in users], "title": [t for t in titles for _ in users], "rating": 3.0}
        )
        tiny = collab_learner(
            CollabDataLoaders.from_df(frame, item_name="title", valid_pct=0.1, seed=0, bs=16),
            n_factors=factors.shape[1],
            y_range=(0, 5.5),
        )
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    assert list(tiny.dls.classes["title"]) == ["#na#"] + sorted(titles), "test set-up: unexpected tiny vocabulary"
    assert list(tiny.dls.classes["user"]) == ["#na#"] + sorted(users), "test set-up: unexpected tiny user vocabulary"
    with torch.no_grad():
        tiny.model.i_weight.weight.copy_(torch.as_tensor(factors, dtype=torch.float32))
        tiny.model.i_bias.weight.copy_(torch.as_tensor(biases, dtype=torch.float32).reshape(-1, 1))
        if user_factors is not None:
            tiny.model.u_weight.weight.copy_(torch.as_tensor(user_factors, dtype=torch.float32))
        if user_biases is not None:
            tiny.model.u_bias.weight.copy_(torch.as_tensor(user_biases, dtype=torch.float32).reshape(-1, 1))
    return tiny
