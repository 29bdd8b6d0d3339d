"""Alerts: where a monitoring alert goes. The log notifier always runs; a webhook is optional.

The webhook speaks Slack's incoming-webhook JSON (`{"text": ...}`), which Mattermost, Rocket.Chat,
Teams workflows and most chat bridges accept too. A failed delivery raises: an alert that could
not be sent is itself reported, never swallowed.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import NotificationError
from ..settings import env_var_name

TIMEOUT_S = 10
WEBHOOK_VARIABLE = env_var_name(("monitor", "webhook_url"))


@dataclass(frozen=True)
class Alert:
    """What went wrong, in a line, and the details a reader acts on."""

    title: str
    details: list[str]
    report: str

    def text(self) -> str:
        """Plain text for logs and chat."""
        lines = [self.title, *(f"- {detail}" for detail in self.details), f"report: {self.report}"]
        return "\n".join(lines)


class Notifier(Protocol):
    """Delivers an alert or raises NotificationError."""

    def send(self, alert: Alert) -> None:
        """Deliver `alert`."""
        ...


@dataclass(frozen=True)
class LogNotifier:
    """Writes the alert to a stream (stderr by default), where schedulers keep job output."""

    # Looked up when writing: the stream in place at import time may be closed by then.
    write: Callable[[str], object] = lambda text: sys.stderr.write(text)  # noqa: PLW0108

    def send(self, alert: Alert) -> None:
        """Write the alert."""
        self.write(alert.text() + "\n")


@dataclass(frozen=True)
class WebhookNotifier:
    """POSTs Slack-compatible JSON to a webhook URL."""

    url: str

    def send(self, alert: Alert) -> None:
        """POST the alert; raise NotificationError unless the server answers 2xx."""
        body = json.dumps({"text": alert.text()}).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own setting
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        where = self.url.split("?", 1)[0].rsplit("/", 1)[0]  # webhook paths hold the secret
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310  # nosec B310
                response.read()
        except urllib.error.HTTPError as error:
            raise NotificationError(
                f"alert not delivered: webhook {where}/... answered {error.code}; "
                f"fix: check ${WEBHOOK_VARIABLE}"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise NotificationError(
                f"alert not delivered: webhook {where}/... unreachable ({reason}); "
                f"fix: check ${WEBHOOK_VARIABLE} and the network"
            ) from None


def notify_all(notifiers: list[Notifier], alert: Alert) -> None:
    """Send to every notifier; if any fails, the others still get it, then raise."""
    failures = []
    for notifier in notifiers:
        try:
            notifier.send(alert)
        except NotificationError as error:
            failures.append(str(error))
    if failures:
        raise NotificationError("; ".join(failures))
