"""Bad answers are rejected with one clear line, at the prompt they were typed at, before any file
is written."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
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
            ["project_slug=2nd-service"],
            "error: project_slug '2nd-service' is not a valid slug; fix: use lowercase letters, "
            "digits and single hyphens, starting with a letter, e.g. 'ml-2nd-service'",
        ),
        (
            ["project_slug=équipe--data"],
            "error: project_slug 'équipe--data' is not a valid slug; fix: use lowercase letters, "
            "digits and single hyphens, starting with a letter, e.g. 'equipe-data'",
        ),
        (
            [f"project_slug={'long-' * 11}name"],
            f"error: project_slug '{'long-' * 11}name' has 59 characters; Kubernetes names built "
            "from it allow 52; fix: shorten it",
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
            "error: project_slug 'mlflow' is the name of a locked dependency "
            "(uv cannot lock both); fix: choose e.g. 'mlflow-service'",
        ),
        (
            ["project_name=Joblib"],
            "error: project_slug 'joblib' is the name of a locked dependency",
        ),
        (
            ["project_name=Click"],
            "error: project_slug 'click' is the name of a locked dependency",
        ),
        *(
            (
                [f"package_name={name}"],
                f"error: package_name '{name}' clashes with the module '{name}' the project "
                "imports or ships; fix:",
            )
            for name in ("joblib", "matplotlib", "skops", "orjson", "httpx", "sklearn", "yaml")
        ),
        (
            ["project_name=json"],
            "error: package_name 'json' clashes with the module 'json' the project imports",
        ),
        (
            # Python's own `test` package is missing from sys.stdlib_module_names.
            ["project_name=Test"],
            "error: package_name 'test' clashes with the module 'test' the project imports",
        ),
        (
            ["author_email=not-an-email"],
            "error: author_email 'not-an-email' is not an email address; fix: use the form",
        ),
        (
            ["description=a bell \x07 rings"],
            "error: description holds a control character; fix:",
        ),
    ],
    ids=[
        "slug-digit",
        "slug-accent",
        "slug-long",
        "package",
        "keyword",
        "slug-mlflow",
        "slug-joblib",
        "slug-click",
        *(f"package-{name}" for name in ("joblib", "matplotlib", "skops", "orjson", "httpx")),
        "package-sklearn",
        "package-yaml",
        "stdlib",
        "stdlib-test",
        "email",
        "control-character",
    ],
)
def test_bad_answer_is_rejected_without_output(
    tmp_path: Path, answers: list[str], message: str
) -> None:
    result = run_cookiecutter(tmp_path, *answers)
    assert result.returncode != 0
    (line,) = our_error_lines(result.stderr)
    assert line.startswith(message)
    # Refused by the prompt-time check, not a failed hook (cookiecutter logs that with a traceback).
    assert "Traceback" not in result.stdout + result.stderr
    assert "hook" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_interactive_bake_stops_at_the_first_wrong_answer(tmp_path: Path) -> None:
    """A wrong slug is refused right after it is typed, not after all nine prompts."""
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--output-dir", str(tmp_path), str(TEMPLATE)],
        input="My Service\n2nd-service\n" + "\n" * 7,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert our_error_lines(result.stderr) == [
        "error: project_slug '2nd-service' is not a valid slug; fix: use lowercase letters, "
        "digits and single hyphens, starting with a letter, e.g. 'ml-2nd-service'"
    ]
    assert "[2/9]" in result.stdout
    assert "[3/9]" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cruft_refuses_a_wrong_answer_the_same_way(tmp_path: Path) -> None:
    cruft = Path(sys.executable).parent / "cruft"
    answers = json.dumps({"project_name": "Joblib"})
    result = subprocess.run(
        [str(cruft), "create", "--no-input", "--extra-context", answers, str(TEMPLATE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert our_error_lines(result.stderr) == [
        "error: project_slug 'joblib' is the name of a locked dependency (uv cannot lock both); "
        "fix: choose e.g. 'joblib-service'"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unsupported_python_is_rejected_by_the_hook(tmp_path: Path) -> None:
    # Choice prompts refuse unknown values themselves; a replayed or hand-edited answer file
    # skips every prompt-time check, so the pre-generation hook applies the same rules.
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
        # Transliterated, collapsed and stripped: the default is always a valid answer.
        (
            {"project_name": "L'Équipe \u2013 Données & Co."},
            "l-equipe-donnees-co",
            "l_equipe_donnees_co",
        ),
        ({"project_name": "  Two  spaces. "}, "two-spaces", "two_spaces"),
        ({"project_name": "3D Vision"}, "ml-3d-vision", "ml_3d_vision"),
        ({"project_name": "🚀 ..."}, "ml-service", "ml_service"),
        (
            {"project_name": "A very long project name that goes on and on for ever and ever"},
            "a-very-long-project-name-that-goes-on-on",
            "a_very_long_project_name_that_goes_on_on",
        ),
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


def test_any_text_in_description_and_author_stays_valid_toml(tmp_path: Path) -> None:
    # JSON escapes (tojson) write an emoji as a surrogate pair, which TOML refuses.
    text = {"description": 'Rocket 🚀 says "hi" \\ bye', "author_name": "Zoë 🚀 O'Brien"}
    project = bake(tmp_path, **text)
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata["description"] == text["description"]
    assert metadata["authors"][0]["name"] == text["author_name"]


def test_a_plain_bake_records_the_template_commit_and_absolute_path(tmp_path: Path) -> None:
    # Run from the template's parent with a relative path, as `cookiecutter main` would be.
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path), TEMPLATE.name],
        cwd=TEMPLATE.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    project = (tmp_path / "my-ml-service").resolve()
    assert f"Next: cd {project} && make setup pipeline" in result.stdout
    state = json.loads((tmp_path / "my-ml-service" / ".cruft.json").read_text())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=TEMPLATE, capture_output=True, text=True, check=True
    )
    assert state["commit"] == head.stdout.strip()
    assert state["template"] == str(TEMPLATE)
