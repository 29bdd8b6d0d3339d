"""The `monitor` and `retrain` commands' work, so the CLI only parses options and calls."""

from __future__ import annotations

import sys
from pathlib import Path

from ..bundle import Champion, ModelNotReadyError, load_champion
from ..contract import Contract
from ..errors import ProjectError
from ..settings import Settings
from .notify import Alert, LogNotifier, Notifier, WebhookNotifier, notify_all
from .verdict import MonitorResult
from .window import Window, attach_labels, read_batch_window, read_log_window


def serving_champion(settings: Settings) -> Champion:
    """The exported champion, loaded and verified as the service loads it."""
    try:
        return load_champion(settings.registry.export_dir, settings.task)
    except ModelNotReadyError as error:
        raise ProjectError(f"no champion to monitor: {error}") from None


def checked_window(
    settings: Settings,
    contract: Contract,
    champion: Champion,
    sources: tuple[Path | None, Path | None, Path | None],
    window_rows: int | None = None,
) -> Window:
    """The window `monitor` checks: (log, data, labels) as the options gave them."""
    log, data, labels = sources
    if log is not None and data is not None:
        raise ProjectError("--log and --data both given; fix: check one window at a time")
    monitor = settings.monitor
    if data is not None:
        window = read_batch_window(data, contract, champion, monitor.max_rows, monitor.seed)
    else:
        window = read_log_window(
            log or settings.serve.prediction_log_dir,
            contract,
            window_rows or monitor.window_rows,
        )
    if labels is not None:
        window = attach_labels(window, labels, contract)
    return window


def labelled_log(settings: Settings, contract: Contract, labels: Path, log: Path | None) -> Window:
    """Every logged prediction with the labels that arrived for it (for `retrain`)."""
    window = read_log_window(log or settings.serve.prediction_log_dir, contract, sys.maxsize)
    return attach_labels(window, labels, contract)


def send_alert(settings: Settings, champion: Champion, result: MonitorResult) -> None:
    """Deliver the result's alerts to stderr and, when configured, the webhook."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.monitor.webhook_url is not None:
        notifiers.append(WebhookNotifier(settings.monitor.webhook_url.get_secret_value()))
    alert = Alert(
        title=f"{settings.registry.model_name} v{champion.version}: monitoring alert",
        details=result.alerts,
        report=str(result.report_dir / "report.html"),
    )
    notify_all(notifiers, alert)
