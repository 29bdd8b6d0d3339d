"""Run inside a baked project's environment by `drift_rates.py`: monitor's alert rates.

For each seed the project's own code re-splits the sample (the seed drives both splits, so every
seed holds back different rows), fits the configured pipeline on the training part, scores it
on the held-out rows and takes its permutation importance there, as `evaluate` does. The
held-back production rows, all of them and each once, are then one clean batch and, changed,
one batch of each kind of drift. Every batch goes through `examine`, the function `monitor`
decides with, against the seed's training pool as reference. Prints JSON: per kind, how many
batches alerted and by which rule.

With window sizes, only clean windows of those sizes are checked (how small a window can be
before clean traffic false-alarms: `monitor.min_rows`).

Usage: python drift_probe.py PACKAGE SEEDS [WINDOW_SIZE ...]
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TOP_FEATURES = 3
FLIPPED_SHARE = 0.3


def module(package: str, name: str) -> Any:
    return importlib.import_module(f"{package}.{name}")


def top_numeric(importance: dict[str, float], contract: Any) -> list[str]:
    numeric = {column.name for column in contract.features if column.is_numeric}
    ranked = sorted(importance, key=lambda name: importance[name], reverse=True)
    return [name for name in ranked if name in numeric][:TOP_FEATURES]


def moved(batch: pd.DataFrame, contract: Any, names: list[str], change: Callable) -> pd.DataFrame:
    """`change(values, mean, std)` applied to `names`, clipped to the contract (as the API is)."""
    changed = batch.copy()
    for column in contract.features:
        if column.name in names:
            values = pd.to_numeric(changed[column.name], errors="coerce").astype(float)
            shifted = change(values, values.mean(), values.std() or 1.0)
            changed[column.name] = shifted.clip(lower=column.min, upper=column.max)
    return changed


def swapped_categories(batch: pd.DataFrame, contract: Any) -> pd.DataFrame | None:
    """The two most common values of every categorical feature swapped; None without one."""
    categorical = [column.name for column in contract.features if not column.is_numeric]
    if not categorical:
        return None
    changed = batch.copy()
    for name in categorical:
        common = changed[name].dropna().astype(str).value_counts().index[:2].tolist()
        if len(common) == 2:
            text = changed[name].astype(object)
            changed[name] = text.map({common[0]: common[1], common[1]: common[0]}).fillna(text)
    return changed


def flipped_labels(
    batch: pd.DataFrame, target: str, task: Any, classes: list[str], seed: int
) -> pd.DataFrame:
    """Concept drift: 30% of rows get another label (another class, or another row's value)."""
    rng = np.random.default_rng(seed)
    changed = batch.copy()
    flip = rng.random(len(changed)) < FLIPPED_SHARE
    if classes:
        changed.loc[flip, target] = [
            classes[(classes.index(str(value)) + 1) % len(classes)]
            for value in changed.loc[flip, target]
        ]
    else:
        changed.loc[flip, target] = rng.permutation(changed.loc[flip, target].to_numpy())
    return changed


def seeded_world(
    package: str, settings: Any, contract: Any, frame: pd.DataFrame, seed: int
) -> tuple[Any, Any, pd.DataFrame, pd.DataFrame]:
    """This seed's split, champion (with metrics and importance) and reference window."""
    from sklearn.inspection import permutation_importance

    rows, bundle, window = (
        module(package, name) for name in ("rows", "bundle", "monitoring.window")
    )
    seeded = settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"seed": seed}),
            "train": settings.train.model_copy(update={"seed": seed}),
        }
    )
    pool, production = rows.production_split(frame, seeded, contract)
    train_part, held = rows.evaluation_split(pool, seeded, contract)
    pipeline = module(package, "train").fit_pipeline(seeded, contract, train_part)
    target, classes = contract.target.name, list(contract.target.allowed or [])
    inputs = bundle.model_inputs(held, contract)
    metrics = settings.task.score(pipeline, inputs, held[target], classes)
    importance = permutation_importance(pipeline, inputs, held[target], n_repeats=5, random_state=0)
    weights = dict(zip(contract.feature_names, importance.importances_mean.tolist(), strict=True))
    metadata = {"version": "1", "metrics": metrics, "importance": weights}
    champion = bundle.Champion(pipeline, contract, metadata, settings.task)
    # What the bundle keeps for monitoring: held-out and out-of-fold answers (see evaluate).
    comparison, train = module(package, "comparison"), module(package, "train")
    answers = comparison.score_rows(settings.task, pipeline, inputs, classes)
    _, out_of_fold = train.cross_validate(
        train.configured_pipeline(seeded, contract),
        bundle.model_inputs(train_part, contract),
        train_part[target],
        seeded,
        classes,
    )
    expected = pd.concat([comparison.outputs_frame(held[target], answers, classes), out_of_fold])
    reference = as_window(window, champion, pool, contract, "pool")
    return champion, reference, production, expected


def as_window(window: Any, champion: Any, rows: pd.DataFrame, contract: Any, source: str) -> Any:
    """`rows` as monitor sees a window: features, the champion's answers, the true labels."""
    rows = rows.reset_index(drop=True)
    frame = rows[contract.feature_names].copy()
    predictions, probabilities = window.predict(champion, frame)
    frame["prediction"] = predictions
    return window.Window(frame, source, len(frame), probabilities, rows[contract.target.name])


def batches(
    package: str, champion: Any, production: pd.DataFrame, contract: Any, seed: int
) -> dict[str, pd.DataFrame]:
    """Each kind of batch for this seed; a kind that does not apply is left out."""
    task, target = champion.task, contract.target.name
    top = top_numeric(champion.metadata["importance"], contract)
    kinds: dict[str, pd.DataFrame | None] = {
        "clean": production,
        "shift 0.5 std (top 3 features)": moved(
            production, contract, top, lambda v, m, s: v + 0.5 * s
        ),
        "shift 1 std (top 3 features)": moved(production, contract, top, lambda v, m, s: v + s),
        "rescale x1.5 (top 3 features)": moved(
            production, contract, top, lambda v, m, s: m + (v - m) * 1.5
        ),
        "category frequencies swapped": swapped_categories(production, contract),
        "30% of labels flipped": flipped_labels(
            production, target, task, list(contract.target.allowed or []), seed
        ),
    }
    return {kind: batch for kind, batch in kinds.items() if batch is not None}


def clean_windows(production: pd.DataFrame, sizes: list[int], seed: int) -> dict[str, pd.DataFrame]:
    """Clean windows of each size, drawn without replacement from the held-back rows."""
    return {
        f"clean window of {size} rows": production.sample(n=size, random_state=seed)
        for size in sizes
        if size <= len(production)
    }


def cache_file(package: str, seeds: int, sizes: list[int]) -> Path:
    """Where this probe's result is kept, named by everything it depends on.

    The probe takes most of an hour per sample: a result is reused when the probe, the
    project's code and params, the seeds and the window sizes are all unchanged.
    """
    digest = hashlib.sha256(f"{seeds} {sizes}".encode())
    sources = [Path(__file__), Path("params.yaml"), *sorted(Path("src", package).rglob("*.py"))]
    for source in sources:
        digest.update(source.read_bytes())
    return Path(f"drift-probe-{digest.hexdigest()[:16]}.json")


def main(package: str, seeds: int, sizes: list[int]) -> None:
    cached = cache_file(package, seeds, sizes)
    # One run per result: a second identical probe waits for the first and reads its result.
    with cached.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_file():
            cached.write_text(probe(package, seeds, sizes) + "\n")
    print(cached.read_text().strip())


def probe(package: str, seeds: int, sizes: list[int]) -> str:
    settings = module(package, "settings").load_settings()
    contract = module(package, "contract").load_contract(settings.contract_path)
    frame = module(package, "prepare").load_source(settings.data.source)
    frame = module(package, "tabular").apply_contract_types(frame, contract)
    examine = module(package, "monitoring.verdict").examine
    window = module(package, "monitoring.window")
    counts: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for seed in range(seeds):
        world = seeded_world(package, settings, contract, frame, seed)
        champion, reference, production, expected = world
        kinds = (
            clean_windows(production, sizes, seed)
            if sizes
            else batches(package, champion, production, contract, seed)
        )
        for kind, batch in kinds.items():
            checked = as_window(window, champion, batch, contract, kind)
            found = examine(settings, contract, champion, checked, reference, expected)
            entry = counts.setdefault(kind, {"batches": 0, "alerts": 0, "rows": 0, "rules": {}})
            entry["batches"] += 1
            entry["rows"] += len(batch)
            entry["alerts"] += bool(found.alerts)
            for alert in found.alerts:
                rule = alert.split(":", 1)[0]
                entry["rules"][rule] = entry["rules"].get(rule, 0) + 1
    for entry in counts.values():
        entry["rows"] = round(entry["rows"] / entry["batches"])
    return json.dumps({"seconds": time.perf_counter() - started, "kinds": counts})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [int(size) for size in sys.argv[3:]])
