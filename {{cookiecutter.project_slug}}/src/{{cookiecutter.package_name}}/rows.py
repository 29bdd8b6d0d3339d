"""Row identity: a stable key per row, and the splits that follow it.

A row's key is a hash of its features as the contract types them, numbers rounded to
`SIGNIFICANT_DIGITS`, so a row read back from a CSV, or copied with float noise, has the same key.
Every split is decided by the key alone (salted per purpose): the same row lands on the same side
whatever else is in the data, so a row never moves from held-out to training when rows are
added, and copies of a row can never sit on both sides.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import ProjectError

if TYPE_CHECKING:
    from .contract import Contract
    from .settings import Settings

SIGNIFICANT_DIGITS = 9
MIN_ROWS_TO_SPLIT = 2
_UNIT = float(2**64)


def _canonical(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return f"{float(value):.{SIGNIFICANT_DIGITS}g}"
    text = str(value)
    try:  # a category code read as 3, 3.0 or "3" is one value
        number = float(text)
    except ValueError:
        return text
    return f"{number:.{SIGNIFICANT_DIGITS}g}" if math.isfinite(number) else text


def row_keys(frame: pd.DataFrame, features: Sequence[str]) -> pd.Series:
    """One hex key per row from its `features` (the target and extra columns do not count)."""
    columns = [frame[name].astype(object).tolist() for name in features]
    keys = [
        hashlib.blake2b(
            "\x1f".join(_canonical(value) for value in values).encode(), digest_size=16
        ).hexdigest()
        for values in zip(*columns, strict=True)
    ]
    return pd.Series(keys, index=frame.index, dtype=object)


def _position(keys: Iterable[str], salt: str) -> np.ndarray:
    """Each key's place in [0, 1), uniform and fixed for a (key, salt) pair."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest())
            / _UNIT
            for key in keys
        ]
    )


def _check_classes(labels: pd.Series, column: str) -> None:
    counts = labels.value_counts()
    rare = counts[counts < MIN_ROWS_TO_SPLIT]
    if not rare.empty:
        raise ProjectError(
            f"class {rare.index[0]!r} of {column} has {int(rare.iloc[0])} row(s); a "
            f"stratified split needs at least {MIN_ROWS_TO_SPLIT} of every class (and "
            "evaluation a few more); fix: add rows of it, or merge it into another class"
        )


def held_out_mask(
    keys: pd.Series,
    fraction: float,
    salt: str,
    labels: pd.Series | None = None,
    *,
    exact: bool = False,
) -> pd.Series:
    """True for the rows held out: by a threshold on each key's place, or `exact`ly.

    Threshold (the default): a row's side depends on its key alone, so it never changes as rows
    are added; the share is `fraction` on average. Exact: within each class (or overall), the
    round(`fraction` x count) lowest-placed rows, so the shares are exact but a row may change
    side when rows are added. Either way each side gets at least one row of every class.
    """
    position = _position(keys, salt)
    groups = pd.factorize(labels.astype(str))[0] if labels is not None else np.zeros(len(keys))
    mask = position < fraction
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        ranked = members[np.argsort(position[members])]
        if exact:
            mask[members] = False
            mask[ranked[: round(fraction * len(members))]] = True
        if not mask[members].any():
            mask[ranked[0]] = True
        if mask[members].all():
            mask[ranked[-1]] = False
    return pd.Series(mask, index=keys.index)


def split_off(
    frame: pd.DataFrame,
    fraction: float,
    seed: int,
    stratify_by: str | None,
    features: Sequence[str],
    purpose: str,
    *,
    exact: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off `fraction` of the rows by their keys: (kept, held out), each in order.

    `purpose` salts the hash, so the production batch and the evaluation rows are drawn
    independently; `seed` too, so a new seed is a new split. `exact`: see `held_out_mask`.
    """
    if len(frame) < MIN_ROWS_TO_SPLIT:
        raise ProjectError(
            f"the data has {len(frame)} rows; at least {MIN_ROWS_TO_SPLIT} are needed to split it"
        )
    labels = None
    if stratify_by is not None:
        labels = frame[stratify_by]
        _check_classes(labels, stratify_by)
    keys = row_keys(frame, features)
    held = held_out_mask(keys, fraction, f"{purpose}:{seed}", labels, exact=exact)
    return frame[~held], frame[held]


def production_split(
    frame: pd.DataFrame, settings: Settings, contract: Contract
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's (training pool, held-back production batch), with exact class shares.

    Exact, not threshold-stable: the source does not grow between versions (labelled rows join
    the pool, not the source), and on small data a batch whose class mix is off by chance
    looks drifted to monitoring.
    """
    data = settings.data
    stratify_by = settings.task.stratify(contract.target.name)
    features = contract.feature_names
    return split_off(
        frame, data.production_fraction, data.seed, stratify_by, features, "production", exact=True
    )


def evaluation_split(
    frame: pd.DataFrame, settings: Settings, contract: Contract
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training pool's (training part, held-out rows), as `train` and `evaluate` see it.

    Seeded by `data.seed`, not `train.seed`: a model trained with another seed must not move
    rows between the parts, or the champion would be judged on rows it was fitted on.
    """
    stratify_by = settings.task.stratify(contract.target.name)
    fraction, seed = settings.train.test_fraction, settings.data.seed
    return split_off(frame, fraction, seed, stratify_by, contract.feature_names, "evaluation")
