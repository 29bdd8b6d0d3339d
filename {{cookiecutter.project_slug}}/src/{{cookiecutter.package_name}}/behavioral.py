"""Behavioural tests of a trained model: minimum functionality, invariance, direction.

They ask what a model should do regardless of its score: get clear-cut cases right, ignore
measurement noise, and move predictions the way the strongest feature says they should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .contract import Contract
from .errors import ProjectError
from .settings import DirectionalSettings
from .task import Task

NOISE_SHARE_OF_STD = 0.01
INVARIANCE_MIN_AGREEMENT = 0.95
DIRECTION_MIN_SHARE = 0.9
FLOAT_TOLERANCE = 1e-9


def share_verdict(share: float, rows: int, bar: float) -> tuple[bool, str]:
    """Whether a share measured on `rows` rows is compatible with at least `bar`, and the figures.

    It fails when the whole 95% (Wilson) interval is below the bar: on a few dozen held-out rows
    one row moves the share by several points, and that alone must not refuse a model.
    """
    if rows == 0:
        return True, "no rows: nothing"
    z = 1.96
    centre = (share + z * z / (2 * rows)) / (1 + z * z / rows)
    half = (
        z * math.sqrt(share * (1 - share) / rows + z * z / (4 * rows * rows)) / (1 + z * z / rows)
    )
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    detail = f"{share:.1%} of {rows} (95% interval {low:.0%}-{high:.0%}; needs {bar:.0%} in it)"
    return high >= bar, detail


@dataclass(frozen=True)
class BehaviouralResult:
    """One behavioural test's verdict and the figure behind it."""

    name: str
    kind: str
    passed: bool
    detail: str


def directional_case(
    train: pd.DataFrame, contract: Contract, signal: pd.Series, choice: DirectionalSettings
) -> tuple[str, float] | str:
    """The feature and sign the directional test follows, or why there is no such test."""
    if choice.feature == "off":
        return f"off in params.yaml: {choice.reason}"
    numeric = [column.name for column in contract.features if column.is_numeric]
    if choice.feature != "auto" and choice.feature not in numeric:
        raise ProjectError(
            f"evaluate.directional.feature {choice.feature!r} is not a numeric feature of the "
            f"contract; fix: use one of {', '.join(numeric) or '(none)'}, auto or off"
        )
    if not numeric:
        return "no numeric feature to raise"
    correlations = {
        name: float(train[name].corr(signal, method="spearman"))
        for name in ([choice.feature] if choice.feature != "auto" else numeric)
    }
    name = max(correlations, key=lambda key: abs(np.nan_to_num(correlations[key])))
    if choice.direction != "auto":
        return name, 1.0 if choice.direction == "up" else -1.0
    return name, float(np.sign(np.nan_to_num(correlations[name])) or 1.0)


def run_behavioural_tests(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    contract: Contract,
    task: Task,
    directional: DirectionalSettings,
) -> list[BehaviouralResult]:
    """Run the three kinds of test on `test` rows, using `train` to pick cases and features."""
    target = contract.target.name
    inputs = test[contract.feature_names]
    classes = list(contract.target.allowed or [])

    # Minimum functionality: the most typical training case of each outcome is predicted right.
    results = [
        BehaviouralResult(name, "minimum functionality", passed, detail)
        for name, passed, detail in task.typical_cases(model, train, contract)
    ]

    # Invariance: noise far below measurement precision does not change predictions.
    rng = np.random.default_rng(0)
    noisy = inputs.copy()
    for column in contract.features:
        if column.is_numeric:
            spread = float(train[column.name].std()) * NOISE_SHARE_OF_STD
            noisy[column.name] = noisy[column.name] + rng.normal(0, spread, len(noisy))
    signal = task.signal(train[target], classes)
    agreement = task.unchanged(model.predict(inputs), model.predict(noisy), float(signal.std()))
    passed, detail = share_verdict(agreement, len(inputs), INVARIANCE_MIN_AGREEMENT)
    results.append(
        BehaviouralResult(
            f"±{NOISE_SHARE_OF_STD:.0%} std noise",
            "invariance",
            passed,
            f"{detail} of predictions unchanged",
        )
    )

    # Direction: raising the strongest feature moves predictions its way (or not at all).
    case = directional_case(train, contract, signal, directional)
    if isinstance(case, str):
        results.append(BehaviouralResult("directional test", "directional", True, case))
        return results
    feature, sign = case
    raised = inputs.copy()
    raised[feature] = raised[feature] + float(train[feature].std())
    change = (task.output(model, raised, classes) - task.output(model, inputs, classes)) * sign
    share = float(np.mean(change >= -FLOAT_TOLERANCE))
    direction = "up" if sign > 0 else "down"
    passed, detail = share_verdict(share, len(inputs), DIRECTION_MIN_SHARE)
    results.append(
        BehaviouralResult(
            f"{feature} +1 std moves the prediction {direction}",
            "directional",
            passed,
            f"{detail} of rows agree",
        )
    )
    return results
