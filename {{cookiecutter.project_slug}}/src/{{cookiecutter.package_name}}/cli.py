"""Command line: one thin command per pipeline stage.

Stage modules are imported inside each command so that `--help` stays fast: pandas and
scikit-learn take seconds to import, Great Expectations far longer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from .errors import (
    EXIT_CODES_HELP,
    DataValidationError,
    ExitCode,
    ProjectError,
    file_errors_named,
)
from .privacy import opt_out

if TYPE_CHECKING:  # pandas behind score.py: imported by the command, not by --help
    from .bundle import Champion
    from .score import ScoreJob, ScoreResult
    from .settings import Settings

ADHOC_REPORTS = Path("reports/adhoc")
# In a log (not a terminal), `score` prints its progress at most this often.
PROGRESS_SECONDS = 10

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name=__name__.partition(".")[0],
    help="Run the ML lifecycle stages of this project (see `dvc.yaml` for the pipeline). "
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Print a ProjectError as one line on stderr and exit with its code, never a traceback."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ProjectError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None

    return run


@app.command()
@reports_errors
def prepare() -> None:
    """Write data/raw from data.source and hold back a production batch for monitoring."""
    from .contract import load_contract
    from .prepare import run_prepare
    from .settings import load_settings

    settings = load_settings()
    contract = load_contract(settings.contract_path)
    result = run_prepare(settings, contract)
    if result.unlabelled_rows:
        typer.echo(
            f"note: left out {result.unlabelled_rows} rows of data.source without a "
            f"{contract.target.name} (nothing to learn from or judge them by)"
        )
    typer.echo(
        f"prepared {result.raw_rows} rows -> {settings.data.raw_path}; "
        f"training pool {result.train_rows} -> {settings.data.train_path}; "
        f"production batch {result.production_rows} -> {settings.data.production_path}"
    )


@app.command()
@reports_errors
def profile(
    csv: Annotated[Path, typer.Argument(help="Any CSV file with a header row.")],
    target: Annotated[str, typer.Option(help="Name of the column the model predicts.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Contract name (default: file stem).")] = None,
    margin: Annotated[
        float, typer.Option(help="Widen observed numeric ranges by this share of the range.")
    ] = 0.1,
    force: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Propose a data contract from a CSV; review it, then point contract_path at it."""
    from .contract import dump_contract, nfc, save_contract
    from .metrics import BINARY
    from .profile import propose_contract
    from .tabular import read_table

    if output is not None and output.exists() and not force:
        raise ProjectError(f"{output} already exists; fix: pass --force to replace it")
    frame = read_table(csv)
    target = nfc(target)  # as the reader names the file's columns
    contract, warnings = propose_contract(frame, target, name or csv.stem, margin)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    classes = contract.target.allowed or []
    if len(classes) == BINARY:
        typer.echo(
            f"note: {classes[-1]!r} is the positive class (f1, precision, recall, roc_auc); "
            f"to make it {classes[0]!r}, list that one last in target.allowed",
            err=True,
        )
    unlabelled = int(frame[target].isna().sum())
    if unlabelled:
        typer.echo(
            f"warning: {unlabelled} of {len(frame)} rows have no {target}; `prepare` leaves "
            "them out (a model learns only from labelled rows)",
            err=True,
        )
    if output is None:
        typer.echo(dump_contract(contract), nl=False)
    else:
        save_contract(contract, output, overwrite=force)
        typer.echo(f"proposed contract for {len(contract.features)} features -> {output}")


@app.command()
@reports_errors
def validate(
    data: Annotated[
        Path | None, typer.Option(help="CSV to validate (default: data.raw_path from params.yaml).")
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Report folder (default: validation.report_dir; reports/adhoc/NAME with --data)."
        ),
    ] = None,
    publish: Annotated[
        bool,
        typer.Option(help="On success, publish prepare's staged split (the pipeline's gate)."),
    ] = False,
) -> None:
    """Check data against the contract with Great Expectations; exit 1 if it breaks it."""
    from .contract import load_contract
    from .prepare import publish_split
    from .settings import load_settings
    from .validate import format_outcome, validate_file

    settings = load_settings()
    contract = load_contract(settings.contract_path)
    if report_dir is None:
        # A one-off check must not overwrite the pipeline's (DVC-tracked) report.
        report_dir = settings.validation.report_dir if data is None else ADHOC_REPORTS / data.stem
    with file_errors_named():  # the report folder may be read-only
        outcome = validate_file(
            data or settings.data.raw_path, contract, settings.validation.min_rows, report_dir
        )
    if not outcome.success:
        raise DataValidationError("data validation failed\n" + format_outcome(outcome))
    typer.echo(format_outcome(outcome))
    typer.echo(f"report: {outcome.report_html}")
    if publish:  # the pipeline's gate passed: the staged split becomes the prepared one
        publish_split(settings)
        typer.echo(f"published {settings.data.train_path} and {settings.data.production_path}")


@app.command()
@reports_errors
def train() -> None:
    """Fit the model on the training pool, track it in MLflow and register it."""
    from .contract import load_contract
    from .settings import load_settings
    from .train import run_train

    settings = load_settings()
    result = run_train(settings, load_contract(settings.contract_path))
    typer.echo(
        f"registered {result.model_name} v{result.model_version} (run {result.run_id}); "
        f"cv {result.primary_metric} {result.cv_mean:.4f} ± {result.cv_std:.4f} "
        f"on {result.train_rows} rows, {result.test_rows} held out"
    )


@app.command()
@reports_errors
def evaluate() -> None:
    """Score the latest model on held-out data; exit 1 if it misses a threshold."""
    from .contract import load_contract
    from .evaluate import run_evaluate
    from .settings import load_settings

    settings = load_settings()
    evaluation = run_evaluate(settings, load_contract(settings.contract_path))
    figures = ", ".join(f"{name} {value:.4f}" for name, value in evaluation.metrics.items())
    typer.echo(f"model v{evaluation.model_version} passes the quality gate: {figures}")
    for test in evaluation.behavioural:
        typer.echo(f"  behavioural [{test.kind}] {test.name}: {test.detail}")


@app.command()
@reports_errors
def promote(
    challenger: Annotated[
        bool, typer.Option("--challenger", help="Judge the challenger alias's version instead.")
    ] = False,
) -> None:
    """Make the latest model the champion if it beats the current one by the margin."""
    from .registry import promote as promote_latest
    from .settings import load_settings

    settings = load_settings()
    decision = promote_latest(settings, from_challenger=challenger)
    typer.echo(decision.message)
    typer.echo(f"serving bundle: {settings.registry.export_dir} (model card: model_card.md)")


@app.command()
@reports_errors
def rollback() -> None:
    """Move the champion alias back to the previous champion and re-export it."""
    from .registry import rollback as roll_back
    from .settings import load_settings

    typer.echo(roll_back(load_settings()).message)


@app.command()
@reports_errors
def challenger(
    version: Annotated[
        int | None, typer.Argument(help="The registry version to serve beside the champion.")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="No challenger: all traffic to the champion.")
    ] = False,
) -> None:
    """Make a version the challenger and export its bundle (serve.rollout serves it)."""
    from .registry import set_challenger
    from .settings import load_settings

    if (version is None) == (not clear):
        raise ProjectError("give a VERSION or --clear (not both); see `models` for versions")
    typer.echo(set_challenger(load_settings(), version))


@app.command()
@reports_errors
def readmit(
    version: Annotated[int, typer.Argument(help="The registry version rolled back from.")],
) -> None:
    """Let a version that was rolled back from be promoted again."""
    from .registry import readmit as readmit_version
    from .settings import load_settings

    typer.echo(readmit_version(load_settings(), version))


@app.command()
@reports_errors
def export() -> None:
    """Re-export the champion's serving bundle from the registry and verify it (recovery)."""
    from .registry import reexport
    from .settings import load_settings

    typer.echo(reexport(load_settings()).message)
    typer.echo("then `dvc repro` records the repaired bundle in dvc.lock")


@app.command()
@reports_errors
def models() -> None:
    """List registered versions with aliases, gate verdicts and the primary metric."""
    from .registry import list_models
    from .settings import load_settings

    rows = list_models(load_settings())
    if not rows:
        typer.echo("no registered versions yet; run the pipeline (dvc repro)")
        return
    columns = list(rows[0])
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}
    for row in [dict(zip(columns, columns, strict=True)), *rows]:
        typer.echo("  ".join(row[column].ljust(widths[column]) for column in columns).rstrip())


@app.command()
@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (one model copy each).", envvar="WEB_CONCURRENCY")
    ] = 1,
) -> None:
    """Serve the exported champion over HTTP (docs at /docs); no tracking server needed."""
    import os

    # One thread per worker: OpenMP threads in tree models fight the event loop for the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from .api.server import protocol
    from .settings import load_settings

    # A settings mistake is one line here, not a traceback per worker.
    serve = load_settings().serve
    uvicorn.run(
        f"{__name__.partition('.')[0]}.api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=protocol(serve),  # type: ignore[arg-type]
        access_log=False,
        # Longer than load balancers' idle timeouts (60 s is common): the proxy, not the service,
        # closes idle keep-alive connections, so no request races a close and gets a reset.
        timeout_keep_alive=serve.keep_alive_seconds,
    )


@app.command()
@reports_errors
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
) -> None:
    """Open MLflow's UI on the training runs (a tracking server: print its runs page)."""
    from .settings import load_settings
    from .tracking import open_ui

    open_ui(load_settings().registry, host, port)


def _score_paths(
    source: Path, output: Path | None, rejects: Path | None, shard: tuple[int, int]
) -> tuple[Path, Path]:
    """The output and reject files (default: reports/score/NAME.predictions.csv, .rejects.csv).

    The rejects are named after the output (OUT.rejects.csv), so two runs on one input with two
    outputs never share a reject file. A shard of several adds -INDEX-of-COUNT to both names, so
    a Job's pods never collide.
    """
    output = output or Path("reports/score") / f"{source.stem}.predictions.csv"
    stem = output.stem.removesuffix(".predictions")
    rejects = rejects or output.with_name(f"{stem}.rejects.csv")
    if shard[1] == 1:
        return output, rejects
    mark = f"-{shard[0]}-of-{shard[1]}"
    return (
        output.with_name(f"{output.stem}{mark}{output.suffix}"),
        rejects.with_name(f"{rejects.stem}{mark}{rejects.suffix}"),
    )


def _progress_printer() -> Callable[[int, int, int], None]:
    """Progress on stderr: one updating line on a terminal, a line every 10 s in a log."""
    import sys
    import time

    terminal = sys.stderr.isatty()
    last = [time.monotonic()]

    def show(rows: int, scored: int, rejected: int) -> None:
        line = f"{rows:,} rows read: {scored:,} scored, {rejected:,} rejected"
        if terminal:
            typer.echo(f"\r{line}", err=True, nl=False)
        elif time.monotonic() - last[0] >= PROGRESS_SECONDS:
            last[0] = time.monotonic()
            typer.echo(line, err=True)

    return show


def _report_scored(result: ScoreResult, job: ScoreJob, max_rejected: float) -> None:
    """What the run did; a gate error (exit 1, files kept) when too many rows were rejected."""
    rate = result.rows / max(result.seconds, 1e-9) * 60
    typer.echo(
        f"\rscored {result.scored:,} of {result.rows:,} rows with v{result.model_version} in "
        f"{result.seconds:.1f} s ({rate:,.0f} rows/min) -> {job.output}; "
        f"{result.rejected:,} rejected -> {job.rejects}"
    )
    if result.log_file is not None:
        typer.echo(
            f"logged {result.logged:,} of them for monitoring -> {result.log_file} "
            f"(prediction_id {result.prediction_id})"
        )
    refused = result.too_many_rejected(max_rejected, job.rejects)
    if refused is not None:
        raise DataValidationError(refused)


def _scoring_champion(settings: Settings) -> Champion:
    """The exported champion on the configured runtime (serve.runtime), or a one-line error."""
    from .bundle import ModelNotReadyError, load_champion

    bundle, runtime = settings.registry.export_dir, settings.serve.runtime
    try:
        return load_champion(bundle, settings.task, runtime)
    except ModelNotReadyError as error:
        raise ProjectError(f"no champion to score with: {error}") from None


@app.command()
@reports_errors
def score(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file of records to score.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Predictions (.csv or .parquet; default reports/score/NAME.predictions.csv).",
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Rows that break the contract, with the reason (CSV; default beside)."),
    ] = None,
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy this input column (an id) to the output.")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows read and scored at a time.")] = 100_000,
    log_rows: Annotated[
        int | None,
        typer.Option(
            help="Scored rows sampled into the prediction log for monitor (default: "
            "monitor.window_rows; 0: none)."
        ),
    ] = None,
    shard_index: Annotated[
        int, typer.Option(envvar="JOB_COMPLETION_INDEX", help="This shard (an Indexed Job's).")
    ] = 0,
    shards: Annotated[
        int, typer.Option(help="Split the rows over this many shards (names get -INDEX-of-N).")
    ] = 1,
    max_rejected: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Exit 1 above this share of rejected rows.")
    ] = 0.5,
    force: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
) -> None:
    """Score a file with the champion in bounded memory; rows that break the contract go to rejects.

    Checks rows with the API's rules, logs a sample for `monitor`; see score.py.
    """
    from .contract import nfc
    from .score import ScoreJob, Shard, run_score
    from .settings import load_settings

    settings = load_settings()
    champion = _scoring_champion(settings)
    output, rejects = _score_paths(data, output, rejects, (shard_index, shards))
    job = ScoreJob(
        source=data,
        output=output,
        rejects=rejects,
        log_dir=settings.serve.prediction_log_dir,
        log_rows=settings.monitor.window_rows if log_rows is None else log_rows,
        chunk_rows=chunk_rows,
        shard=Shard(shard_index, shards),
        keep=tuple(map(nfc, keep or ())),
        seed=settings.monitor.seed,
        force=force,
    )
    _report_scored(run_score(job, champion, _progress_printer()), job, max_rejected)


@app.command()
@reports_errors
def explain(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file of records to explain.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Attributions CSV (default reports/explain/NAME.shap.csv)."
        ),
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Explain the file's first rows only.")] = 1000,
    force: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Explain the champion's answers: each record's SHAP attribution per feature (CSV).

    A record's base value plus its attributions is the model's output (the largest gap is
    printed). Needs the explain dependency group (shap); see explain.py.
    """
    from .explain import explain_file
    from .settings import load_settings

    output = output or Path("reports/explain") / f"{data.stem}.shap.csv"
    if output.exists() and not force:
        raise ProjectError(f"{output} already exists; fix: pass --force to replace it")
    if output.resolve() == data.resolve():
        raise ProjectError(f"{output} is the input file; fix: write the results elsewhere")
    settings = load_settings()
    done = explain_file(settings.registry.export_dir, settings.task, data, output, max_rows)
    typer.echo(
        f"explained {done.explained:,} of {done.rows:,} rows with v{done.model_version} "
        f"({done.method}, {done.output}) -> {output}; {done.rows - done.explained:,} break "
        f"the contract (their problem is in the file)"
    )
    if done.explained:
        typer.echo(
            f"base value + attributions = the model's output within {done.largest_gap:.1e}; "
            f"strongest features here: {', '.join(done.strongest)}"
        )


@app.command()
@reports_errors
def compare(
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV of prediction_id, row, <target>: judge both models' quality."),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for compare.json and compare.html.")
    ] = Path("reports/compare"),
) -> None:
    """Champion vs the shadow challenger, from the prediction logs (serve.rollout shadow).

    Agreement, both prediction distributions and, with labels, the primary metric of both on
    the same labelled rows with a paired interval. Exit status: 0 promote (then `promote
    --challenger`), 1 keep the champion, 5 need more data.
    """
    from .compare import KEEP, NEED_DATA, run_compare, write_report
    from .contract import load_contract
    from .settings import load_settings

    settings = load_settings()
    result = run_compare(settings, load_contract(settings.contract_path), labels)
    report = write_report(result, output)
    paired = f"{result.paired_rows:,} paired rows ({result.labelled_rows:,} labelled)"
    if result.agreement is not None:
        typer.echo(f"{paired}: the models agree on {result.agreement:.1%}")
    else:
        typer.echo(f"{paired}: mean |challenger - champion| {result.mean_abs_difference:.4g}")
    typer.echo(f"{result.decision}: {result.why} -> {report}")
    codes = {KEEP: ExitCode.GATE, NEED_DATA: ExitCode.UNDECIDED}
    raise typer.Exit(codes.get(result.decision, ExitCode.OK))


@app.command()
@reports_errors
def monitor(
    log: Annotated[
        Path | None,
        typer.Option(help="Prediction log folder or file (default: serve.prediction_log_dir)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Check this CSV batch instead of the prediction log.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV of prediction_id, row, <target>: judge the model's quality too."),
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="Latest rows of the log to check (default: params).")
    ] = None,
) -> None:
    """Compare recent inputs and predictions with the training data (Evidently).

    Writes reports/monitoring/<time>/ (report.html, summary.json, evidently.json) and the
    Prometheus gauges. Exit status: 0 no alert, 3 alert (drift or quality drop), 2 bad input,
    4 alert not delivered.
    """
    from .contract import load_contract
    from .monitoring.run import checked_window, send_alert, serving_champion
    from .monitoring.verdict import MonitorResult, format_result, run_monitor
    from .settings import load_settings

    settings = load_settings()
    contract = load_contract(settings.contract_path)
    champion = serving_champion(settings)
    checked = checked_window(settings, contract, champion, (log, data, labels), window)

    def announce(result: MonitorResult) -> None:
        # Before the reports are written: a full disk must not swallow the alert.
        typer.echo(format_result(result))
        if result.alert:
            send_alert(settings, champion, result)

    result = run_monitor(settings, contract, champion, checked, on_verdict=announce)
    if result.alert:
        raise typer.Exit(ExitCode.ALERT)


@app.command()
@reports_errors
def simulate(
    kind: Annotated[str, typer.Argument(help="clean | drifted")],
    rows: Annotated[
        int | None, typer.Option(min=1, help="Rows in the batch (default: every held-back row).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Draw rows more than once (allows more rows than held back).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same batch).")] = 0,
    missing: Annotated[
        float, typer.Option(min=0, max=1, help="Share of values to blank (CSV only).")
    ] = 0.0,
    output: Annotated[
        Path | None, typer.Option(help="CSV to write (default: data/simulated/KIND-SEED.csv).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Also send the rows to this running service.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per request with --url.")] = 20,
    force: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
) -> None:
    """Make a production-like batch from the held-back data, clean or drifted.

    With --url the rows are sent to the service (so they land in its prediction log) and their
    true labels are written next to the batch as OUTPUT.labels.csv, keyed by prediction id.
    """
    from .contract import load_contract
    from .settings import load_settings
    from .simulate import make_batch, replay, write_new_csv
    from .tabular import read_table

    if kind not in ("clean", "drifted"):
        raise ProjectError(f"kind {kind!r} is unknown; fix: use clean or drifted")
    if url is not None and missing > 0:
        raise ProjectError(
            "--missing with --url: the service refuses rows with missing values (422); "
            "fix: write missing values to a CSV and check it with `monitor --data`"
        )
    settings = load_settings()
    contract = load_contract(settings.contract_path)
    production = read_table(settings.data.production_path, contract)
    drifted = kind == "drifted"
    batch = make_batch(production, contract, rows, seed, drifted=drifted, replace=replace)
    batch = batch.with_missing(missing, contract, seed)
    output = output or Path("data/simulated") / f"{kind}-{seed}.csv"
    labels_path = output.with_suffix(".labels.csv")
    write_new_csv(batch.frame, output, force=force)
    typer.echo(f"{kind} batch of {len(batch.frame)} rows -> {output}")
    if batch.drifted_columns:
        typer.echo(f"  changed columns: {', '.join(batch.drifted_columns)}")
    if url is not None:
        api_key = settings.serve.api_key
        secret = None if api_key is None else api_key.get_secret_value()
        labels = replay(batch.frame, contract, url, batch_size, secret)
        write_new_csv(labels, labels_path, force=force)
        typer.echo(f"  sent to {url}; labels (prediction_id, row, target) -> {labels_path}")


@app.command()
@reports_errors
def pipeline() -> None:
    """Run the DVC pipeline (`dvc repro`): the stages whose inputs or tracking store changed."""
    from .pipeline import run_pipeline
    from .settings import load_settings

    exit_code = run_pipeline(load_settings())
    if exit_code:
        raise typer.Exit(exit_code)


@app.command()
@reports_errors
def retrain(
    data: Annotated[
        Path | None, typer.Option(help="Labelled CSV (features and the target column).")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Labels for logged predictions (prediction_id, row, target)."),
    ] = None,
    log: Annotated[
        Path | None, typer.Option(help="Prediction log with --labels (default: serve's).")
    ] = None,
) -> None:
    """Add newly labelled rows to the training pool, re-run the pipeline, let the gate decide."""
    from .contract import load_contract
    from .monitoring.run import labelled_log
    from .retrain import labelled_file, labelled_rows, run_retrain
    from .settings import load_settings

    if (data is None) == (labels is None):
        raise ProjectError("give either --data (a labelled CSV) or --labels (for the log)")
    settings = load_settings()
    contract = load_contract(settings.contract_path)
    if data is not None:
        rows, unlabelled = labelled_file(data, contract)
        if unlabelled:
            typer.echo(
                f"note: {unlabelled} row(s) of {data} have no {contract.target.name} value "
                "and were left out"
            )
    else:
        assert labels is not None  # noqa: S101 - checked above  # nosec B101
        window = labelled_log(settings, contract, labels, log)
        for note in window.notes:
            typer.echo(f"note: {note}")
        rows = labelled_rows(window, contract)
    typer.echo(run_retrain(settings, contract, rows).message())


batches_app = typer.Typer(
    help="Labelled batches `retrain` stored: their state (pending, accepted, quarantined, "
    "deleted) and why; re-admit or delete one.",
    no_args_is_help=True,
)
app.add_typer(batches_app, name="batches")
BatchId = Annotated[str, typer.Argument(help="A batch id (or its start) from `batches list`.")]


@batches_app.command("list")
@reports_errors
def batches_list() -> None:
    """Every labelled batch with its state, size, time, file and reason."""
    from .batches import load_batches
    from .contract import load_contract
    from .settings import load_settings

    settings = load_settings()
    found = load_batches(settings, load_contract(settings.contract_path))
    if not found:
        typer.echo(f"no labelled batches yet ({settings.monitor.batches_file})")
    for batch in found:
        typer.echo(batch.line())


@batches_app.command("readmit")
@reports_errors
def batches_readmit(batch: BatchId) -> None:
    """Put a quarantined batch back in the training pool (the next `dvc repro` trains on it)."""
    from .batches import readmit
    from .contract import load_contract
    from .settings import load_settings

    settings = load_settings()
    typer.echo(readmit(settings, load_contract(settings.contract_path), batch).line())


@batches_app.command("delete")
@reports_errors
def batches_delete(batch: BatchId) -> None:
    """Delete a batch's file (its record stays, marked deleted); `dvc repro` then drops it."""
    from .batches import delete
    from .contract import load_contract
    from .settings import load_settings

    settings = load_settings()
    typer.echo(delete(settings, load_contract(settings.contract_path), batch).line())


def main() -> None:
    """Console-script entry point."""
    opt_out()  # before any command imports MLflow or onnxruntime, and for dvc under `retrain`
    app()
