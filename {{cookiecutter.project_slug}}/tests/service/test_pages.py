"""The pages people open, rendered by a real headless browser with the network cut off.

/docs, /redoc and the validation report must show their content offline: an endpoint's path, a
table row, not a blank page waiting for a CDN. Needs Chromium (or Chrome); without one these
tests are skipped, unless REQUIRE_BROWSER=1 (the template's CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)
from {{ cookiecutter.package_name }}.settings import (
    Settings,
)
from {{ cookiecutter.package_name }}.validate import (
    validate_file,
)

from .conftest import (
    PROJECT_ROOT,
    RunningService,
    free_port,
)

pytestmark = pytest.mark.slow
BROWSERS = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
# Every host name fails to resolve and every connection goes to a dead proxy; loopback (the
# service under test) bypasses proxies by Chromium's own rule.
OFFLINE = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
]


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = f"no headless browser ({', '.join(BROWSERS)}): install chromium"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _render(browser: str, url: str, screenshot: Path, budget_ms: int = 15000) -> str:
    """The page's DOM after its scripts ran (offline), and a screenshot of it."""
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1280,1000",
        *OFFLINE,
    ]
    # One browser start does both: the screenshot and the DOM are of the same render.
    dom = subprocess.run(
        [*common, f"--screenshot={screenshot}", "--dump-dom", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return dom.stdout


def _colours(screenshot: Path) -> int:
    with Image.open(screenshot) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])


@pytest.mark.parametrize(("page", "content"), [("/docs", "opblock"), ("/redoc", "operation")])
def test_api_docs_render_offline(
    browser: str, running_service: RunningService, tmp_path: Path, page: str, content: str
) -> None:
    screenshot = tmp_path / "page.png"
    dom = _render(browser, running_service.url + page, screenshot)
    # Rendered by the page's script: the operation's path, in the viewer's own markup.
    assert "/predict" in dom, f"{page} did not render (its scripts did not load offline)"
    assert content in dom
    assert _colours(screenshot) > 50, f"{page} looks blank"


def test_the_validation_report_renders_offline(
    browser: str,
    sample_csv: Path,
    contract: Contract,
    settings: Settings,
    tmp_path: Path,
) -> None:
    outcome = validate_file(sample_csv, contract, settings.validation.min_rows, tmp_path)
    screenshot = tmp_path / "report.png"
    dom = _render(browser, Path(outcome.report_html).as_uri(), screenshot)
    assert "all checks passed" in dom
    for column in contract.columns:
        assert f"<td>{column.name}</td>" in dom, f"no row for {column.name}"
    assert _colours(screenshot) > 5, "the report looks blank"


RUN_NAME = "train train.csv 0123abcd (99 rows)"


def test_the_mlflow_ui_opens_on_the_training_runs(browser: str, tmp_path: Path) -> None:
    """`ui` prints a page that shows the runs table (not the GenAI traces view) with the run."""
    package = next((PROJECT_ROOT / "src").iterdir()).name
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Both processes see only this store: no MLflow state of earlier tests in this process
    # (an active experiment, its id in the environment) reaches them.
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": store,
    }
    seed = (
        "import mlflow\n"
        f"from {package} import settings, tracking\n"
        "tracking.configure(settings.load_settings().registry)\n"
        f"with mlflow.start_run(run_name={RUN_NAME!r}):\n"
        "    mlflow.log_metric('cv_score', 0.5)\n"
    )
    subprocess.run(
        [sys.executable, "-c", seed], cwd=PROJECT_ROOT, env=environment, check=True, timeout=300
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", package, "ui", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline()
        assert printed.startswith(f"the runs: http://127.0.0.1:{port}/#/experiments/"), printed
        page = printed.split()[2]
        _wait_for(f"http://127.0.0.1:{port}/health", seconds=120)
        # The page asks the server for the runs; on a busy machine an answer can miss one
        # render's time budget, so up to three renders, each with a longer one.
        for attempt in range(3):
            dom = _render(browser, page, tmp_path / "runs.png", budget_ms=30000 * (attempt + 1))
            if RUN_NAME in dom:
                break
    finally:
        process.terminate()
        process.wait(timeout=30)
    # The GenAI view (the UI's default) lists traces, not runs: the run's name means the runs table.
    assert RUN_NAME in dom, "the runs table did not show the run"


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback, the test's own
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer in {seconds:.0f} s")
            time.sleep(0.5)
