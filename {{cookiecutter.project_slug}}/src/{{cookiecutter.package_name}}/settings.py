"""Typed settings: `params.yaml` (shared with DVC), overridden by environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from .errors import ProjectError
from .task import TASKS, Task

PARAMS_FILE = Path("params.yaml")
# Derived from the package name so the code carries no template values.
ENV_PREFIX = __name__.partition(".")[0].upper() + "_"
ENV_NESTED_DELIMITER = "__"
# The header that carries serve.api_key: the service checks it, `simulate --url` sends it.
API_KEY_HEADER = "X-API-Key"  # pragma: allowlist secret (a header name)


def _task(value: Any) -> Task:
    if isinstance(value, Task):
        return value
    if value not in TASKS:
        raise ValueError(f"unknown task; use one of {', '.join(TASKS)}")
    return TASKS[value]


# params.yaml names the task; the settings hold the task object that decides for it.
TaskSetting = Annotated[Task, BeforeValidator(_task), PlainSerializer(str)]


# What answers a champion's predictions, and what serve.runtime may ask for (auto: the ONNX
# graph when it passed parity at export, else scikit-learn; see onnx_model.py).
Runtime = Literal["onnx", "sklearn"]
RuntimeChoice = Literal["auto", "onnx", "sklearn"]
# serve.rollout: how a challenger bundle shares the traffic (api/rollout.py).
RolloutChoice = Literal["off", "shadow", "canary", "ab"]


def _off_is_off(value: Any) -> Any:
    return "off" if value is False else value  # YAML reads an unquoted `off` as false


RolloutSetting = Annotated[RolloutChoice, BeforeValidator(_off_is_off)]


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(Section):
    """Where the data comes from and how it is split."""

    source: str = Field(min_length=1)
    raw_path: Path
    train_path: Path
    production_path: Path
    # Where `prepare` stages the split until the validation gate accepts the raw data.
    staged_dir: Path
    test_path: Path
    production_fraction: float = Field(gt=0, lt=1)
    seed: int


class ValidationSettings(Section):
    """The data validation gate."""

    min_rows: int = Field(ge=1)
    report_dir: Path


SLICES_FILE = "slices.json"
# What the model card states beyond the point figures: intervals, errors, composition.
ANALYSIS_FILE = "analysis.json"
BEHAVIOURAL_FILE = "behavioural.json"
# SHAP's global picture: each feature's mean |attribution| on the held-out rows (model card).
EXPLANATION_FILE = "explanation.json"
HyperParameter = bool | int | float | str | None


class SearchRange(Section):
    """One hyperparameter's search range: numbers from low to high, or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False  # sample on a log scale (rates, regularisation strengths)
    integer: bool = False
    choices: list[HyperParameter] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either a non-empty `choices` list or `low` and `high`")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("`low` must be below `high` (or give `choices`)")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs `low` above 0")
        return self


class SearchSettings(Section):
    """Hyperparameter search with Optuna: off (0 trials) unless asked."""

    trials: int = Field(default=0, ge=0)
    timeout_seconds: float = Field(default=600, gt=0)
    space: dict[str, SearchRange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_space(self) -> Self:
        if self.trials and not self.space:
            raise ValueError("trials asked but `space` names no hyperparameter to search")
        return self


class TrainSettings(Section):
    """The model: an estimator by name, its hyperparameters, and the held-out split."""

    estimator: str = Field(min_length=1)
    hyperparameters: dict[str, HyperParameter] = Field(default_factory=dict)
    search: SearchSettings = Field(default_factory=SearchSettings)
    test_fraction: float = Field(gt=0, lt=1)
    cv_folds: int = Field(ge=2, le=20)
    seed: int
    run_file: Path


class DirectionalSettings(Section):
    """The directional behavioural test: which feature, which way, or off (and why)."""

    # auto: the numeric feature most correlated with the target; or a numeric feature's name;
    # or off, when every candidate is confounded (the reason goes in the model card).
    feature: str = Field(default="auto", min_length=1)
    # auto: the way that feature correlates with the target in the training data.
    direction: Literal["auto", "up", "down"] = "auto"
    reason: str = ""

    @model_validator(mode="after")
    def _check_reason(self) -> Self:
        if self.feature == "off" and not self.reason.strip():
            raise ValueError(
                "evaluate.directional.feature is off but no reason is given; fix: set "
                "evaluate.directional.reason (it is recorded in the model card)"
            )
        return self


class SliceSettings(Section):
    """The gate on the contract's slices: how many rows a figure needs, the largest gap allowed."""

    # A group with fewer rows behind a metric (positives, for the false-negative rate) is
    # reported as too small to judge and left out of the gap.
    min_rows: int = Field(default=10, ge=1)
    # metric -> the largest gap between groups; evaluate fails when a gap's whole interval is above.
    max_gap: dict[str, float] = Field(default_factory=dict)


class EvaluateSettings(Section):
    """Quality bar: thresholds every model must meet, and the metric champions compete on."""

    primary_metric: str
    # Absolute bars, tuned to the data; optional (empty: only the baseline bar applies).
    thresholds: dict[str, float] = Field(default_factory=dict)
    # The bar that means something on any data: the primary metric must beat a baseline that
    # ignores the inputs (majority class, mean value) on the same held-out rows by this share
    # of the distance to a perfect score.
    min_gain_over_baseline: float = Field(default=0.1, ge=0, lt=1)
    promotion_margin: float = Field(ge=0)
    # The promotion gate scores champion and challenger on the same held-out rows and promotes
    # only when the whole `confidence` interval of the gain (paired bootstrap) is above the margin.
    confidence: float = Field(default=0.95, gt=0, lt=1)
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    report_dir: Path
    directional: DirectionalSettings = Field(default_factory=DirectionalSettings)
    slices: SliceSettings = Field(default_factory=SliceSettings)

    @property
    def metrics_file(self) -> Path:
        """The held-out metrics and the gate's verdict (a DVC metrics file)."""
        return self.report_dir / "metrics.json"

    @property
    def behavioural_file(self) -> Path:
        """The behavioural tests' results."""
        return self.report_dir / BEHAVIOURAL_FILE

    @property
    def slices_file(self) -> Path:
        """Each contract slice: groups, figures, gaps with intervals, bars, notes."""
        return self.report_dir / SLICES_FILE

    @property
    def analysis_file(self) -> Path:
        """Each held-out metric's interval, the errors and the data's composition (model card)."""
        return self.report_dir / ANALYSIS_FILE

    @property
    def explanation_file(self) -> Path:
        """The held-out rows' mean |SHAP| per feature, with the explainer and output used."""
        return self.report_dir / EXPLANATION_FILE

    @property
    def promotion_file(self) -> Path:
        """The promotion gate's decision with both figures on the same rows (a DVC metric)."""
        return self.report_dir / "promotion.json"


class RegistrySettings(Section):
    """Where runs and models are tracked, and where the serving copy of the champion goes."""

    tracking_uri: str = Field(min_length=1)
    experiment: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    champion_alias: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    export_dir: Path
    # The challenger alias's bundle (`challenger VERSION` exports it): what serve.rollout
    # serves beside the champion.
    challenger_alias: str = Field(default="challenger", pattern=r"^[a-z][a-z0-9_-]*$")
    challenger_dir: Path = Path("models/challenger")
    # A tracking server that stops answering fails a stage within about
    # (retries + 1) x timeout + backoff seconds; MLflow's own defaults took 9 minutes.
    http_timeout_seconds: int = Field(default=8, ge=1)
    http_max_retries: int = Field(default=2, ge=0)
    http_backoff_factor: int = Field(default=1, ge=0)
    # The export keeps the champion's ONNX graph only within this of scikit-learn's answers.
    onnx_tolerance: float = Field(default=1e-4, gt=0, lt=1)


class ServeSettings(Section):
    """The prediction service: request limits, access control and the prediction log."""

    max_batch_rows: int = Field(ge=1)
    max_body_bytes: int = Field(ge=1024)
    # auto: the bundle's ONNX graph when it passed parity, else scikit-learn (see onnx_model.py).
    runtime: RuntimeChoice = "auto"
    # POST /explain (SHAP attributions, api/routes/explain.py): needs the explain group (shap).
    explain: bool = False
    # Progressive delivery (api/rollout.py): the challenger bundle beside the champion. shadow:
    # it scores every request, only the champion answers; canary and ab: it answers
    # challenger_share of routing keys (X-Routing-Key, sticky; else each request is drawn).
    rollout: RolloutSetting = "off"
    challenger_share: float = Field(default=0.1, ge=0, le=1)
    # shadow: the share of requests the challenger also scores (each costs a model call).
    shadow_share: float = Field(default=1.0, ge=0, le=1)
    # How often a running rollout checks its challenger bundle is still exported: once it is
    # gone (`challenger --clear`, the canary's rollback), all traffic goes to the champion.
    rollout_check_seconds: float = Field(default=2, gt=0)
    # What a connection may send and how slowly (see api/server.py); k8s/ is sized from these.
    max_header_bytes: int = Field(default=16384, ge=1024)
    max_headers: int = Field(default=100, ge=10)
    header_timeout_seconds: float = Field(default=10, gt=0)
    body_timeout_seconds: float = Field(default=20, gt=0)
    keep_alive_seconds: int = Field(default=75, ge=1)
    max_requests_in_flight: int = Field(default=256, ge=1)
    # Auth is on only when switched on here; the key itself comes from the environment.
    require_api_key: bool = False
    api_key: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)
    prediction_log_dir: Path
    prediction_log_queue: int = Field(ge=1)
    # Rotation and retention of the prediction log (api/prediction_log.py).
    prediction_log_file_bytes: int = Field(default=64 * 2**20, ge=2**20)
    prediction_log_keep_bytes: int = Field(default=768 * 2**20, ge=2**20)
    prediction_log_keep_days: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _check_api_key(self) -> Self:
        if self.require_api_key and not (self.api_key and self.api_key.get_secret_value()):
            raise ValueError(
                f"serve.require_api_key is on but no key is set; fix: set "
                f"${ENV_PREFIX}SERVE{ENV_NESTED_DELIMITER}API_KEY (never in params.yaml)"
            )
        return self


class MonitorSettings(Section):
    """Drift monitoring: which rows it checks, when it alerts, and where it writes."""

    window_rows: int = Field(ge=1)
    min_rows: int = Field(ge=1)
    # Below this many rows the drift thresholds are raised by sqrt(threshold_rows / rows).
    threshold_rows: int = Field(default=80, ge=1)
    # Larger windows are sampled down to this many rows (seeded), which bounds time and memory.
    max_rows: int = Field(ge=100)
    # Evidently stat-test names and the score at which a column counts as drifted.
    numerical_test: str = Field(min_length=1)
    numerical_threshold: float = Field(gt=0)
    categorical_test: str = Field(min_length=1)
    categorical_threshold: float = Field(gt=0)
    max_drifted_share: float = Field(gt=0, le=1)
    # Alert when the drifted features carry more than this share of the model's feature
    # importance (the champion's permutation importance at evaluation): drift in what it uses.
    max_drifted_importance: float = Field(default=0.5, gt=0, le=1)
    # Alert when any one feature's distance is this many times its threshold: one input moved
    # that far is a broken feed (a unit change, a stuck sensor), whatever its importance.
    severe_drift_factor: float = Field(default=2.0, gt=1)
    # Alert when the prediction's own distribution drifted.
    alert_on_prediction_drift: bool = True
    max_performance_drop: float = Field(ge=0)
    min_labelled_rows: int = Field(ge=2)
    seed: int
    report_dir: Path
    metrics_file: Path
    labelled_dir: Path
    # Batches whose model missed the quality gate or lost by more than quarantine_tolerance.
    quarantine_dir: Path
    # Each labelled batch's state and reason (see batches.py).
    batches_file: Path
    # The share of the champion's score a batch's model may lose by and its data still count
    # as sound (accepted, kept in the pool); beyond it the batch is quarantined.
    quarantine_tolerance: float = Field(ge=0, le=1)
    # Quarantine a batch before training when the champion disagrees with more than this share
    # of its labels; None (the default) turns the check off (see params.yaml).
    max_label_disagreement: float | None = Field(default=None, gt=0, le=1)
    # A Slack-compatible incoming webhook; a secret, so it comes from the environment.
    webhook_url: SecretStr | None = None


class Settings(BaseSettings):
    """Every setting the pipeline reads; all of them live in params.yaml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        yaml_file=PARAMS_FILE,
        arbitrary_types_allowed=True,
    )

    task: TaskSetting
    contract_path: Path
    data: DataSettings
    validation: ValidationSettings
    train: TrainSettings
    evaluate: EvaluateSettings
    registry: RegistrySettings
    serve: ServeSettings
    monitor: MonitorSettings

    @model_validator(mode="after")
    def _check_metrics_fit_the_task(self) -> Self:
        known = self.task.metrics
        named = {"evaluate.primary_metric": [self.evaluate.primary_metric]}
        named["evaluate.thresholds"] = list(self.evaluate.thresholds)
        for key, metrics in named.items():
            for metric in metrics:
                if metric not in known:
                    raise ValueError(
                        f"{key}: '{metric}' is not a {self.task} metric; "
                        f"use one of {', '.join(known)}"
                    )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win, then the environment, then params.yaml.

        No .env source: other tools' variables share that file and would be "unknown settings";
        load one explicitly with `uv run --env-file .env`.
        """
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)


def env_var_name(location: tuple[int | str, ...]) -> str:
    """The environment variable that overrides the setting at `location`."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in location)


def describe_validation_error(error: ValidationError, source: str, *, from_env: bool = True) -> str:
    """One line per problem, naming the setting, what is wrong and where to fix it."""
    lines = []
    for problem in error.errors():
        location = tuple(problem["loc"])
        key = ".".join(str(part) for part in location)
        if problem["type"] == "extra_forbidden":
            lines.append(
                f"{source}: unknown setting '{key}'; fix: remove it or correct its spelling"
            )
        elif problem["type"] == "missing":
            lines.append(f"{source}: missing setting '{key}'; fix: add it to {source}")
        else:
            fix = f"{source} or ${env_var_name(location)}" if from_env else source
            lines.append(
                f"{source}: setting '{key}' = {problem.get('input')!r}: {problem['msg']}; "
                f"fix: correct it in {fix}"
            )
    return "\n".join(lines)


def load_settings() -> Settings:
    """Read and validate params.yaml from the current directory (the project root)."""
    if not PARAMS_FILE.is_file():
        raise ProjectError(
            f"{PARAMS_FILE} not found in {Path.cwd()}; fix: run the command from the project root"
        )
    try:
        return Settings()
    except yaml.YAMLError as error:
        raise ProjectError(f"{PARAMS_FILE} is not valid YAML: {error}") from None
    except ValidationError as error:
        raise ProjectError(describe_validation_error(error, str(PARAMS_FILE))) from None
