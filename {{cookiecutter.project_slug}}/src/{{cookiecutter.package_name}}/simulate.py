"""Command `simulate`: production-like batches, clean or drifted, as CSV or sent to the service.

Rows are drawn from the held-back production data (never used in training), each at most once
unless asked, so a clean batch looks like real traffic and its labels add no copies. A drifted
one shifts and widens half of the numeric features and skews the category mix, clipped to the
contract so the service still accepts every row; labels keep their original values, so the
model's quality drops where its inputs moved.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .contract import Contract
from .errors import ProjectError
from .files import write_whole
from .monitoring.records import PREDICTION_ID, ROW
from .settings import API_KEY_HEADER

SHIFT_IN_STDS = 1.0
SCALE = 1.5


@dataclass(frozen=True)
class Batch:
    """A simulated batch: rows with their true target, and what was changed."""

    frame: pd.DataFrame
    drifted_columns: list[str]

    def with_missing(self, share: float, contract: Contract, seed: int) -> Batch:
        """The batch with about `share` of every feature's values blanked (seeded)."""
        if share <= 0:
            return self
        rng = np.random.default_rng(seed)
        frame = self.frame.copy()
        for column in contract.features:
            blank = rng.random(len(frame)) < share
            frame[column.name] = frame[column.name].astype(object).where(~blank, None)
        return Batch(frame, self.drifted_columns)


def make_batch(
    production: pd.DataFrame,
    contract: Contract,
    rows: int | None,
    seed: int,
    *,
    drifted: bool,
    replace: bool = False,
) -> Batch:
    """`rows` rows drawn from `production` (all by default), changed if `drifted`.

    Drifted: shifted, rescaled and re-mixed. Without `replace` no row is drawn twice: copies
    would count twice as labels.
    """
    if production.empty:
        raise ProjectError("the production data is empty; fix: run `dvc repro` (prepare)")
    rows = len(production) if rows is None else rows
    if rows > len(production) and not replace:
        raise ProjectError(
            f"--rows {rows} is more than the {len(production)} held-back production rows; fix: "
            f"--rows {len(production)} or fewer, or --replace to draw rows more than once"
        )
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(production), size=rows, replace=replace)
    batch = production.iloc[picked].reset_index(drop=True).copy()
    changed: list[str] = []
    if drifted:
        numeric = [column for column in contract.features if column.is_numeric]
        count = max(1, math.ceil(len(numeric) / 2))
        for column in (numeric[index] for index in sorted(rng.permutation(len(numeric))[:count])):
            values = pd.to_numeric(batch[column.name], errors="coerce").astype(float)
            mean, std = values.mean(), values.std() or 1.0
            moved = mean + (values - mean) * SCALE + SHIFT_IN_STDS * std
            moved = moved.clip(lower=column.min, upper=column.max)
            batch[column.name] = moved.round() if column.type == "int" else moved
            changed.append(column.name)
        for column in contract.features:
            if column.type == "category" and column.allowed and len(column.allowed) > 1:
                # The rarest category becomes the most common one; a blank stays blank
                # unless re-mixed (text "<NA>" would be a category the service refuses).
                values = batch[column.name].astype(object)
                values = values.where(values.notna(), None)
                counts = values.dropna().astype(str).value_counts()
                rare = min(column.allowed, key=lambda value: counts.get(value, 0))
                flip = rng.random(len(batch)) < 0.6  # noqa: PLR2004 - share of rows re-mixed
                batch[column.name] = values.where(~flip, rare)
                changed.append(column.name)
    return Batch(batch, changed)


def _post(url: str, body: bytes, api_key: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers[API_KEY_HEADER] = api_key
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise ProjectError(f"{url} answered {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ProjectError(
            f"cannot reach {url} ({reason}); fix: start the service (`make serve`) "
            "or pass its address with --url"
        ) from None


def replay(
    batch: pd.DataFrame,
    contract: Contract,
    url: str,
    batch_size: int,
    api_key: str | None = None,
) -> pd.DataFrame:
    """POST the batch's features to the service; return labels keyed by prediction id and row."""
    if not url.startswith(("http://", "https://")):
        raise ProjectError(
            f"--url {url!r} is not an http(s) address; fix: e.g. http://127.0.0.1:8000"
        )
    endpoint = url.rstrip("/") + "/predict"
    target = contract.target.name
    features = batch[contract.feature_names]
    labels: list[dict[str, Any]] = []
    for start in range(0, len(batch), batch_size):
        chunk = features.iloc[start : start + batch_size]
        body = chunk.to_json(orient="records").encode()
        answer = _post(endpoint, body, api_key)
        for row in range(len(chunk)):
            labels.append(
                {
                    PREDICTION_ID: answer[PREDICTION_ID],
                    ROW: row,
                    target: batch[target].iloc[start + row],
                }
            )
    return pd.DataFrame(labels)


def write_new_csv(frame: pd.DataFrame, path: Path, *, force: bool) -> None:
    """Write a CSV, refusing to replace an existing file unless told to."""
    if path.exists() and not force:
        raise ProjectError(f"{path} already exists; fix: pass --force to replace it, or --output")
    write_whole(path, frame.to_csv(index=False))
