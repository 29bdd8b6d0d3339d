"""SHAP attributions of a pipeline's answers: per record (`explain`, `/explain`), and overall.

SHAP explains the pipeline's last step in its encoded space (imputed, scaled, one-hot), with
the explainer that fits the estimator: TreeExplainer for trees (exact, no background needed),
LinearExplainer for linear models (against background rows from training), and the
model-agnostic PermutationExplainer for anything else. A one-hot feature's columns are then
summed back to the contract's feature, so a record's attributions name the columns it was sent
with and, with the base value, add up to the model's output (SHAP's additivity).

The output explained is the one the explainer is exact for: a probability (random forests,
the permutation explainer), the decision function (boosted trees' and linear models' log-odds)
or the predicted value. A binary target's positive class (its last) is explained; for
multiclass, each record's predicted class. `shap` is imported only here, when an explainer is
built: it is in the `explain` dependency group, which the default serving image leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ProjectError, file_errors_named

if TYPE_CHECKING:
    import pandas as pd

    from .bundle import Champion
    from .task import Task

Array = np.ndarray[Any, Any]
# Training rows kept (encoded) in the bundle: what linear and permutation explainers compare a
# record with. A hundred keep the bundle small and the permutation explainer's cost bounded.
BACKGROUND_ROWS = 100
PROBABILITY, DECISION, PREDICTION = "probability", "decision_function", "prediction"
INSTALL_FIX = (
    "fix: install the explain group (uv sync --group explain), or build the image with "
    "`make image EXPLAIN=true`"
)


@dataclass(frozen=True)
class Attributions:
    """Each row's attribution per feature; base value + their sum = the model's output."""

    features: tuple[str, ...]
    values: Array  # rows x features
    base_values: Array  # rows
    explained: tuple[str, ...]  # per row: the class explained ("" for a regression)
    output: str  # PROBABILITY, DECISION or PREDICTION
    method: str  # the SHAP explainer used

    @property
    def outputs(self) -> Array:
        """What the attributions add up to, per row."""
        return np.asarray(self.base_values + self.values.sum(axis=1), dtype=float)

    def importance(self) -> pd.Series:
        """Mean absolute attribution per feature, largest first: the global picture."""
        import pandas as pd

        means = np.abs(self.values).mean(axis=0) if len(self.values) else 0.0
        series = pd.Series(means, index=list(self.features), name="mean_abs_shap", dtype=float)
        return series.sort_values(ascending=False)

    def row(self, index: int) -> dict[str, Any]:
        """One row as the API and the CLI show it."""
        return {
            "explained": self.explained[index] or None,
            "output": self.output,
            "base_value": float(self.base_values[index]),
            "value": float(self.outputs[index]),
            "attributions": dict(zip(self.features, map(float, self.values[index]), strict=True)),
        }


def background(pipeline: Any, inputs: pd.DataFrame, seed: int) -> Array:
    """At most BACKGROUND_ROWS training rows, seeded, encoded as the pipeline's last step sees."""
    if len(inputs) > BACKGROUND_ROWS:
        inputs = inputs.sample(BACKGROUND_ROWS, random_state=seed)
    return np.asarray(pipeline[:-1].transform(inputs), dtype=float)


def _owners(encoder: Any) -> list[str]:
    """For each encoded column, the contract feature it came from (one-hot: several columns)."""
    columns_of = encoder[-1]  # the ColumnTransformer
    owners: list[str] = []
    for name, transformer, columns in columns_of.transformers_:
        part = columns_of.output_indices_[name]
        width = part.stop - part.start
        if width == 0:
            continue
        if width == len(columns):
            owners.extend(columns)
        else:  # a one-hot encoder: one column per category seen in training
            categories = transformer[-1].categories_
            owners.extend(c for c, seen in zip(columns, categories, strict=True) for _ in seen)
    return owners


class Explainer:
    """A fitted pipeline's SHAP explainer, built once, for any number of calls."""

    def __init__(self, pipeline: Any, classes: list[str], background_rows: Array | None) -> None:
        try:
            import shap
        except ImportError:
            raise ProjectError(f"explanations need the shap package; {INSTALL_FIX}") from None
        self._encoder, self._model = pipeline[:-1], pipeline[-1]
        self._classes = classes
        owners = _owners(self._encoder)
        # In the order the pipeline was fitted with: the contract's.
        self.features = tuple(str(name) for name in pipeline.feature_names_in_)
        # Encoded column -> feature: a 0/1 matrix, so a product sums one-hot columns back.
        self._fold = (np.array(owners)[:, None] == np.array(self.features)[None, :]).astype(float)
        self._shap, self.method, self.output = _build(shap, self._model, background_rows)

    def explain(self, inputs: pd.DataFrame) -> Attributions:
        """Attributions for `inputs` (the contract's features, typed by `model_inputs`)."""
        encoded = np.asarray(self._encoder.transform(inputs), dtype=float)
        found = self._shap(encoded, **self._call_options(encoded))
        values = np.asarray(found.values, dtype=float)
        base = np.asarray(found.base_values, dtype=float)
        if values.ndim == encoded.ndim:  # one output: a regression, or classes_[1]'s decision
            values, base = values[:, :, None], np.broadcast_to(base, len(encoded))[:, None]
        column, explained, sign = self._explained_column(encoded, values.shape[2])
        rows = np.arange(len(encoded))
        chosen = values[rows, :, column] * sign
        base = np.broadcast_to(base, (len(encoded), values.shape[2]))[rows, column] * sign
        return Attributions(
            self.features, chosen @ self._fold, base, explained, self.output, self.method
        )

    def _call_options(self, encoded: Array) -> dict[str, Any]:
        if self.method == "PermutationExplainer":  # every column moved at least once
            return {"max_evals": max(500, 2 * encoded.shape[1] + 1), "silent": True}
        return {}

    def _explained_column(self, encoded: Array, outputs: int) -> tuple[Array, tuple[str, ...], int]:
        """Per row: which output column, the class it stands for, and the sign to apply."""
        rows = len(encoded)
        if not self._classes:
            return np.zeros(rows, dtype=int), ("",) * rows, 1
        order = [str(label) for label in self._model.classes_]
        if len(order) == 2:  # noqa: PLR2004 - binary: the contract's last class is positive
            positive = self._classes[-1]
            if outputs == 1:  # the decision function speaks for classes_[1]
                sign = 1 if order[1] == positive else -1
                return np.zeros(rows, dtype=int), (positive,) * rows, sign
            return np.full(rows, order.index(positive)), (positive,) * rows, 1
        predicted = np.asarray(self._model.predict_proba(encoded)).argmax(axis=1)
        return predicted, tuple(order[index] for index in predicted), 1

    def model_output(self, inputs: pd.DataFrame, attributions: Attributions) -> Array:
        """The model's own output for what `attributions` explain: what they must add up to."""
        encoded = np.asarray(self._encoder.transform(inputs), dtype=float)
        if self.output == PREDICTION:
            return np.asarray(self._model.predict(encoded), dtype=float)
        if self.output == PROBABILITY:
            table = np.asarray(self._model.predict_proba(encoded), dtype=float)
        else:
            table = np.asarray(self._model.decision_function(encoded), dtype=float)
            if table.ndim == 1:  # binary: the decision for classes_[1]; classes_[0] is its negative
                table = np.column_stack([-table, table])
        order = [str(label) for label in self._model.classes_]
        columns = [order.index(label) for label in attributions.explained]
        return table[np.arange(len(encoded)), columns]


def _build(shap: Any, model: Any, background_rows: Array | None) -> tuple[Any, str, str]:
    """The explainer that fits `model`, its name, and the output it explains."""
    classifier = hasattr(model, "classes_")
    if hasattr(model, "coef_"):
        return (
            shap.LinearExplainer(model, shap.maskers.Independent(_needed(background_rows))),
            "LinearExplainer",
            DECISION if classifier else PREDICTION,
        )
    try:
        tree = shap.TreeExplainer(model)
    except Exception:  # shap raises several kinds for a model it cannot read
        function = model.predict_proba if classifier else model.predict
        masker = shap.maskers.Independent(_needed(background_rows))
        explainer = shap.PermutationExplainer(function, masker, seed=0)
        return explainer, "PermutationExplainer", PROBABILITY if classifier else PREDICTION
    probability = getattr(tree.model, "tree_output", "") == "probability"
    output = (PROBABILITY if probability else DECISION) if classifier else PREDICTION
    return tree, "TreeExplainer", output


def _needed(background_rows: Array | None) -> Array:
    if background_rows is None:
        raise ProjectError(
            "this model's explainer needs the bundle's background rows, which it has not (it "
            "was trained before explanations existed); fix: retrain and promote a new version"
        )
    return background_rows


def load_explainer(bundle: Path, task: Task) -> tuple[Champion, Explainer]:
    """The exported champion (its scikit-learn pipeline: a graph cannot be explained), explainer."""
    from .bundle import ModelNotReadyError, load_champion, read_background

    try:
        champion = load_champion(bundle, task, "sklearn")
    except ModelNotReadyError as error:
        raise ProjectError(f"no champion to explain: {error}") from None
    classes = list(champion.contract.target.allowed or [])
    return champion, Explainer(champion.pipeline, classes, read_background(bundle))


def overall(attributions: Attributions) -> dict[str, Any]:
    """The global explanation evaluate records: each feature's mean |SHAP|, largest first."""
    explained = sorted(set(attributions.explained) - {""})
    return {
        "method": attributions.method,
        "output": attributions.output,
        "explained": explained[0] if len(explained) == 1 else "each row's predicted class",
        "rows": len(attributions.values),
        "importance": [
            {"feature": name, "mean_abs_shap": round(float(value), 6)}
            for name, value in attributions.importance().items()
        ],
    }


def summary_figure(attributions: Attributions, inputs: pd.DataFrame, shown: int = 15) -> Any:
    """SHAP's summary plot: each row's attribution per feature, coloured by the feature's value.

    Drawn here (matplotlib) rather than with shap.summary_plot, which cannot colour a text
    category; those points are grey.
    """
    import matplotlib.pyplot as plt

    top = list(attributions.importance().index[:shown])[::-1]
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(top) + 1.5))
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(attributions.values))
    for position, name in enumerate(top):
        column = attributions.features.index(name)
        values = inputs[name]
        colour: dict[str, Any] = {"color": "0.6"}
        if values.dtype.kind in "fiub":
            colour = {"c": values.rank(pct=True).fillna(0.5).to_numpy(), "cmap": "coolwarm"}
        axes.scatter(attributions.values[:, column], position + jitter, s=8, **colour)
    axes.set_yticks(range(len(top)), top)
    axes.axvline(0, color="0.3", linewidth=0.8)
    explained = overall(attributions)["explained"]
    axes.set_xlabel(f"SHAP value ({attributions.output}; {explained}): red = high feature value")
    axes.set_title(f"SHAP summary ({attributions.method}, held-out rows)")
    return figure


@dataclass(frozen=True)
class ExplainedFile:
    """What `explain` wrote: row counts, the explainer, and how exactly the sums held."""

    rows: int
    explained: int
    model_version: str
    method: str
    output: str
    # The largest |base value + attributions - the model's own output| over the rows.
    largest_gap: float
    strongest: tuple[str, ...]


def explain_file(
    bundle: Path, task: Task, source: Path, output: Path, max_rows: int
) -> ExplainedFile:
    """Explain the first `max_rows` records of `source` with the champion; write a CSV.

    One line per record: a record that breaks the contract gets its problem (no attributions);
    the others the class explained, the output's name, the base value, `value` (base + the
    attributions), `model_value` (the model's own output) and `shap_<feature>` per feature.
    """
    import pandas as pd

    from .bundle import model_inputs
    from .row_checks import checked_rows
    from .tabular import read_table_chunks, require_features

    if max_rows < 1:
        raise ProjectError("--max-rows must be at least 1")
    champion, explainer = load_explainer(bundle, task)
    contract = champion.contract
    frame = next(iter(read_table_chunks(source, contract, max_rows)), None)
    if frame is None or frame.empty:
        raise ProjectError(f"{source}: no rows; fix: supply a file with data rows")
    require_features(frame.columns, contract, source)
    features, reasons = checked_rows(frame, contract)
    good = (reasons == "").to_numpy()
    table = pd.DataFrame({"row": frame.index, "problem": reasons.to_numpy()})
    gap, strongest = 0.0, ()
    if good.any():
        inputs = model_inputs(features[good], contract)
        found = explainer.explain(inputs)
        model_value = explainer.model_output(inputs, found)
        gap = float(np.abs(found.outputs - model_value).max())
        strongest = tuple(found.importance().index[:3])
        columns = {
            "explained": found.explained,
            "output": found.output,
            "base_value": found.base_values,
            "value": found.outputs,
            "model_value": model_value,
            **{f"shap_{name}": found.values[:, i] for i, name in enumerate(found.features)},
        }
        table = table.join(pd.DataFrame(columns, index=np.flatnonzero(good)))
    with file_errors_named():
        output.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output, index=False)
    return ExplainedFile(
        len(frame), int(good.sum()), champion.version, explainer.method, explainer.output,
        gap, strongest,
    )  # fmt: skip
