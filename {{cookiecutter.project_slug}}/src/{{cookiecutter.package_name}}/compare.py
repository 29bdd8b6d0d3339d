"""Command `compare`: the shadow challenger against the champion, from the prediction logs.

In shadow mode (api/rollout.py) the champion's answers go to the prediction log and the
challenger's, on the same requests, to its `shadow/` folder. Joined by (prediction_id, row)
they are paired: how often the two agree, how their predictions are distributed, and, with
labels, both models' primary metric on the same labelled rows with a paired-bootstrap interval
of the challenger's gain (comparison.py, as the promotion gate decides). The decision:
promote (the whole interval above evaluate.promotion_margin), keep, or need more data (fewer
than `min_rows` paired, labelled rows).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .comparison import Scored, paired_bootstrap
from .contract import Contract
from .errors import MonitoringInputError
from .monitoring.records import PREDICTION, PREDICTION_ID, ROW, SHADOW_LOG_FOLDER
from .monitoring.window import Window, attach_labels, read_log_window
from .settings import Settings

PROMOTE, KEEP, NEED_DATA = "promote", "keep", "need more data"


@dataclass(frozen=True)
class ShadowComparison:
    """What `compare` found and decided (compare.json)."""

    paired_rows: int
    labelled_rows: int
    agreement: float | None  # classes: the share of rows both models answer alike
    mean_abs_difference: float | None  # values: the mean |challenger - champion|
    distribution: dict[str, Any]
    quality: dict[str, Any] | None
    decision: str
    why: str


def _shares(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.astype(str).value_counts(normalize=True).items()}


def _ks(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    grid = np.sort(np.concatenate([first, second]))
    ecdf = [
        np.searchsorted(np.sort(side), grid, side="right") / len(side) for side in (first, second)
    ]
    return float(np.max(np.abs(ecdf[0] - ecdf[1])))


def _distribution(categorical: bool, ours: pd.Series, theirs: pd.Series) -> dict[str, Any]:
    """Each model's prediction distribution on the paired rows, and how far apart they are."""
    if categorical:
        champion, challenger = _shares(ours), _shares(theirs)
        labels = sorted(set(champion) | set(challenger))
        distance = 0.5 * sum(abs(champion.get(k, 0.0) - challenger.get(k, 0.0)) for k in labels)
        return {"champion": champion, "challenger": challenger, "total_variation": distance}
    first, second = ours.astype(float).to_numpy(), theirs.astype(float).to_numpy()
    return {
        "champion": {"mean": float(first.mean()), "std": float(first.std())},
        "challenger": {"mean": float(second.mean()), "std": float(second.std())},
        "ks_statistic": _ks(first, second),
    }


def _scored(window: Window, rows: pd.Index, classes: list[str]) -> Scored:
    predicted = window.frame.loc[rows, PREDICTION].to_numpy()
    if window.probabilities is None:
        return Scored(predicted, None)
    probabilities = window.probabilities.loc[rows]
    return Scored(predicted, probabilities[classes].to_numpy(dtype=float))


def _paired(log_dir: Path, contract: Contract) -> tuple[Window, Window, pd.Index, pd.Index]:
    """Both logs and the positions of the rows they share, in the same order."""
    shadow_dir = log_dir / SHADOW_LOG_FOLDER
    if not shadow_dir.is_dir():
        raise MonitoringInputError(
            f"{shadow_dir} does not exist; fix: serve with serve.rollout shadow and a challenger "
            "(`challenger VERSION`), send traffic, then compare"
        )
    everything = 2**62
    ours = read_log_window(log_dir, contract, everything)
    theirs = read_log_window(shadow_dir, contract, everything)
    keys = [PREDICTION_ID, ROW]
    left = ours.frame[keys].drop_duplicates(keep="first").reset_index()
    right = theirs.frame[keys].drop_duplicates(keep="first").reset_index()
    joined = left.merge(right, on=keys, suffixes=("_ours", "_theirs"))
    return ours, theirs, pd.Index(joined["index_ours"]), pd.Index(joined["index_theirs"])


def _decide(
    settings: Settings, contract: Contract, ours: Window, theirs: Window, rows: tuple[Any, Any]
) -> tuple[dict[str, Any] | None, int, str, str]:
    """(quality figures, labelled rows, decision, why) from the labelled paired rows."""
    evaluate = settings.evaluate
    if ours.labels is None:
        return None, 0, NEED_DATA, "no labels given (--labels): agreement alone decides nothing"
    truth = ours.labels.loc[rows[0]].reset_index(drop=True)
    labelled = truth.notna().to_numpy()
    count = int(labelled.sum())
    minimum = settings.monitor.min_rows
    if count < minimum:
        why = f"{count} labelled paired rows, fewer than monitor.min_rows {minimum}"
        return None, count, NEED_DATA, why
    classes = [str(label) for label in contract.target.allowed or []]
    champion = _scored(ours, rows[0][labelled], classes)
    challenger = _scored(theirs, rows[1][labelled], classes)
    result = paired_bootstrap(
        settings.task, evaluate.primary_metric, truth[labelled].reset_index(drop=True),
        champion, challenger, classes, resamples=evaluate.bootstrap_resamples,
        confidence=evaluate.confidence, seed=settings.train.seed,
    )  # fmt: skip
    decision = PROMOTE if result.better_by(evaluate.promotion_margin) else KEEP
    return result.to_dict(), count, decision, result.describe().replace("held-out", "labelled")


def run_compare(settings: Settings, contract: Contract, labels: Path | None) -> ShadowComparison:
    """Pair the champion's logged answers with the shadow challenger's; judge with labels."""
    ours, theirs, mine, yours = _paired(settings.serve.prediction_log_dir, contract)
    if not len(mine):
        raise MonitoringInputError(
            "no prediction is in both logs; fix: compare the log of the shadow-mode service"
        )
    if labels is not None:
        ours = attach_labels(ours, labels, contract)
    categorical = settings.task.prediction_is_categorical
    first = ours.frame.loc[mine, PREDICTION].reset_index(drop=True)
    second = theirs.frame.loc[yours, PREDICTION].reset_index(drop=True)
    quality, labelled, decision, why = _decide(settings, contract, ours, theirs, (mine, yours))
    return ShadowComparison(
        paired_rows=len(mine),
        labelled_rows=labelled,
        agreement=float((first.astype(str) == second.astype(str)).mean()) if categorical else None,
        mean_abs_difference=(
            None
            if categorical
            else float((first.astype(float) - second.astype(float)).abs().mean())
        ),
        distribution=_distribution(categorical, first, second),
        quality=quality,
        decision=decision,
        why=why,
    )


def write_report(result: ShadowComparison, folder: Path) -> Path:
    """compare.json and a self-contained compare.html in `folder`; the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    record = asdict(result)
    (folder / "compare.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(
        f"<tr><th>{html.escape(key)}</th><td><code>{html.escape(json.dumps(value))}</code></td></tr>"
        for key, value in record.items()
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>Champion vs challenger</title>"
        "<style>body{font:15px sans-serif;margin:2em}td,th{padding:4px 8px;text-align:left;"
        "border-bottom:1px solid #ddd;vertical-align:top}</style>"
        f"<h1>Champion vs shadow challenger: {html.escape(result.decision)}</h1>"
        f"<p>{html.escape(result.why)}</p><table>{rows}</table>"
    )
    (folder / "compare.html").write_text(page)
    return folder / "compare.json"
