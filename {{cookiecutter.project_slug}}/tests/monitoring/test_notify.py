"""Alerts reach a real local HTTP server as Slack-compatible JSON; failures are reported."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.errors import (
    NotificationError,
)
from {{ cookiecutter.package_name }}.monitoring.notify import (
    Alert,
    LogNotifier,
    WebhookNotifier,
    notify_all,
)

from .conftest import SECRET_PATH, Webhook

ALERT = Alert(
    title="my-model v3: monitoring alert",
    details=["data drift: 40% of features drifted (threshold 25%): age, bmi"],
    report="reports/monitoring/20260101T000000Z/report.html",
)


def test_the_webhook_receives_slack_compatible_json(webhook: Webhook) -> None:
    WebhookNotifier(webhook.url).send(ALERT)
    [request] = webhook.received
    assert request["path"] == SECRET_PATH
    assert request["content_type"] == "application/json"
    body = request["body"]
    assert isinstance(body, dict)
    assert set(body) == {"text"}
    assert body["text"].startswith("my-model v3: monitoring alert\n- data drift: 40%")
    assert ALERT.report in body["text"]


def test_a_refusing_webhook_is_reported_without_leaking_its_secret(webhook: Webhook) -> None:
    webhook.status[0] = 500
    with pytest.raises(NotificationError, match="answered 500") as raised:
        WebhookNotifier(webhook.url).send(ALERT)
    assert "not-a-real-secret" not in str(raised.value)
    assert raised.value.exit_code == 4


def test_an_unreachable_webhook_is_reported() -> None:
    with pytest.raises(NotificationError, match="unreachable"):
        WebhookNotifier("http://127.0.0.1:9/hook").send(ALERT)


def test_one_failing_notifier_does_not_silence_the_others(webhook: Webhook) -> None:
    written: list[str] = []
    with pytest.raises(NotificationError, match="unreachable"):
        notify_all(
            [
                WebhookNotifier("http://127.0.0.1:9/hook"),
                LogNotifier(written.append),
                WebhookNotifier(webhook.url),
            ],
            ALERT,
        )
    assert written == [ALERT.text() + "\n"]
    assert len(webhook.received) == 1
