"""A monitored deployment in a temporary folder: training pool, held-back batch, champion."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.bundle import (
    EVALUATION_FILE,
    Champion,
    load_champion,
    model_inputs,
)
from {{ cookiecutter.package_name }}.comparison import (
    outputs_frame,
    score_rows,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.rows import (
    evaluation_split,
    production_split,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.train import (
    configured_pipeline,
    cross_validate,
    fit_pipeline,
)

from ..conftest import export_bundle

MonitorSettings = Callable[..., Settings]


@pytest.fixture(scope="session")
def deployment(
    settings: Settings,
    contract: Contract,
    sample: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Prepared data and a champion trained on the pool, with its held-out metrics on record."""
    folder = tmp_path_factory.mktemp("deployment")
    target = contract.target.name
    pool, production = production_split(sample, settings, contract)
    train, held_out = evaluation_split(pool, settings, contract)
    (folder / "data").mkdir()
    pool.to_csv(folder / "data/train.csv", index=False)
    production.to_csv(folder / "data/production.csv", index=False)
    pipeline = fit_pipeline(settings, contract, train)
    inputs, classes = model_inputs(held_out, contract), list(contract.target.allowed or [])
    metrics = settings.task.score(pipeline, inputs, held_out[target], classes)
    bundle = export_bundle(pipeline, contract, settings.task, folder / "champion", metrics=metrics)
    # As `promote` exports it: the held-out and out-of-fold answers monitoring weighs a window
    # against.
    answers = score_rows(settings.task, pipeline, inputs, classes)
    _, out_of_fold = cross_validate(
        configured_pipeline(settings, contract),
        model_inputs(train, contract),
        train[target],
        settings,
        classes,
    )
    expected = pd.concat([outputs_frame(held_out[target], answers, classes), out_of_fold])
    expected.to_csv(bundle / EVALUATION_FILE, index=False)
    return folder


@pytest.fixture
def monitor_settings(settings: Settings, deployment: Path, tmp_path: Path) -> MonitorSettings:
    """Settings that monitor the deployment and write only under the test's own folder.

    Keyword arguments override `monitor` settings, validated like params.yaml.
    """

    def make(**monitor: Any) -> Settings:
        return settings.model_copy(
            update={
                "data": settings.data.model_copy(
                    update={
                        "train_path": deployment / "data/train.csv",
                        "production_path": deployment / "data/production.csv",
                    }
                ),
                "registry": settings.registry.model_copy(
                    update={"export_dir": deployment / "champion"}
                ),
                "serve": settings.serve.model_copy(update={"prediction_log_dir": tmp_path / "log"}),
                "monitor": type(settings.monitor).model_validate(
                    {
                        **settings.monitor.model_dump(),
                        "report_dir": tmp_path / "reports",
                        "metrics_file": tmp_path / "reports/drift.prom",
                        "labelled_dir": tmp_path / "labelled",
                        **monitor,
                    }
                ),
            }
        )

    return make


@pytest.fixture(scope="session")
def champion(deployment: Path, settings: Settings) -> Champion:
    return load_champion(deployment / "champion", settings.task)


@pytest.fixture(scope="session")
def production(deployment: Path, contract: Contract) -> pd.DataFrame:
    from {{ cookiecutter.package_name }}.tabular import (
        read_table,
    )

    return read_table(deployment / "data/production.csv", contract)


SECRET_PATH = "/services/T000/B000/not-a-real-secret"  # noqa: S105 - a fake one


@dataclass
class Webhook:
    """A local webhook receiver that answers with a chosen status."""

    url: str
    status: list[int]
    received: list[dict[str, object]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    received: list[dict[str, object]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(status[0])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield Webhook(f"http://{host!s}:{port}{SECRET_PATH}", status, received)
    server.shutdown()
    server.server_close()
