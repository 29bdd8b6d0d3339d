"""Bad answers are rejected with one clear line before any file is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE, bake


def run_cookiecutter(output_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Bake through the real CLI; `args` are answers (key=value) or options such as a replay."""
    no_input = [] if "--replay-file" in args else ["--no-input"]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            *no_input,
            "--output-dir",
            str(output_dir),
            str(TEMPLATE),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def our_error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            ["project_name=2nd Service"],
            "error: project_slug '2nd-service' is not a valid slug; fix: use lowercase letters",
        ),
        (
            ["package_name=my-service"],
            "error: package_name 'my-service' is not a lowercase Python identifier; fix:",
        ),
        (
            ["project_name=Class"],
            "error: package_name 'class' is a Python keyword; fix: choose e.g. 'class_model'",
        ),
        (
            ["project_name=MLflow"],
            "error: package_name 'mlflow' clashes with the module 'mlflow' the project imports; "
            "fix:",
        ),
        (
            ["project_name=json"],
            "error: package_name 'json' clashes with the module 'json' the project imports; fix:",
        ),
        (
            ["author_email=not-an-email"],
            "error: author_email 'not-an-email' is not an email address; fix: use the form",
        ),
    ],
    ids=["slug", "package", "keyword", "dependency", "stdlib", "email"],
)
def test_bad_answer_is_rejected_without_output(
    tmp_path: Path, answers: list[str], message: str
) -> None:
    result = run_cookiecutter(tmp_path, *answers)
    assert result.returncode != 0
    (line,) = our_error_lines(result.stderr)
    assert line.startswith(message)
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unsupported_python_is_rejected_by_the_hook(tmp_path: Path) -> None:
    # Choice prompts refuse unknown values themselves; a replayed or hand-edited answer file
    # skips that check, so the hook guards it too.
    good = bake(tmp_path / "good")
    context = json.loads((good / ".cruft.json").read_text())["context"]
    # A replay holds every key cookiecutter renders, private ones included.
    context["cookiecutter"].update(
        python_version="3.10", __dataset="breast_cancer", _copy_without_render=["src/*"]
    )
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps(context))
    output = tmp_path / "out"
    output.mkdir()
    result = run_cookiecutter(output, "--replay-file", str(replay))
    assert result.returncode != 0
    assert our_error_lines(result.stderr) == [
        "error: python_version '3.10' is not supported; fix: choose one of 3.11, 3.12, 3.13"
    ]
    assert list(output.iterdir()) == []


@pytest.mark.parametrize(
    ("answers", "slug", "package"),
    [
        ({"project_name": "Fraud_Detector v2"}, "fraud-detector-v2", "fraud_detector_v2"),
        ({"project_name": "Demo", "package_name": "demo_core"}, "demo", "demo_core"),
    ],
)
def test_names_are_derived(
    tmp_path: Path, answers: dict[str, str], slug: str, package: str
) -> None:
    project = bake(tmp_path, **answers)
    assert project.name == slug
    assert (project / "src" / package / "cli.py").is_file()


def test_post_gen_removes_only_the_unchosen_license(tmp_path: Path) -> None:
    assert not (bake(tmp_path / "a", license="Proprietary") / "LICENSE").exists()
    assert "Apache License" in (bake(tmp_path / "b", license="Apache-2.0") / "LICENSE").read_text()
