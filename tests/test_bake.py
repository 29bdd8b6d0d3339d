"""Every option bakes into exactly the expected files, fully rendered and parseable."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import yaml
from conftest import TEMPLATE, TEMPLATE_PROJECT

EXPECTED_FILES = {
    ".cruft.json",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dockerignore",
    ".dvcignore",
    ".env.example",
    ".github/dependabot.yml",
    ".github/workflows/cd.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/monitor.yml",
    ".github/workflows/retrain.yml",
    ".github/workflows/rollback.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    ".secrets.baseline",
    "LICENSE",
    "Dockerfile",
    "Makefile",
    "docker-compose.yml",
    "docker/certs/README.md",
    "docker/smoke-test.sh",
    "docker/compose-wait.sh",
    "docker/postgres-entrypoint.sh",
    "docker/prometheus.Dockerfile",
    "k8s/base/deployment.yaml",
    "k8s/base/hpa.yaml",
    "k8s/base/kustomization.yaml",
    "k8s/base/pdb.yaml",
    "k8s/base/service.yaml",
    "k8s/batch/cronjob.yaml",
    "k8s/batch/kustomization.yaml",
    "k8s/batch/volume.yaml",
    "k8s/collect-logs.sh",
    "k8s/deploy.sh",
    "k8s/overlays/production/kustomization.yaml",
    "k8s/overlays/production/namespace.yaml",
    "k8s/overlays/staging/kustomization.yaml",
    "k8s/overlays/staging/namespace.yaml",
    "grafana/dashboards/prediction-service.json",
    "grafana/provisioning/dashboards/dashboards.yml",
    "grafana/provisioning/datasources/prometheus.yml",
    "prometheus/compose.yml",
    "prometheus/prometheus.yml",
    "prometheus/rules.yml",
    "prometheus/rules.test.yml",
    "README.md",
    "contract.yaml",
    "data/external/.gitkeep",
    "dvc.yaml",
    "params.yaml",
    "tracking_store.yaml",
    "pyproject.toml",
    "uv.lock",
    "src/{package}/__init__.py",
    "src/{package}/behavioral.py",
    "src/{package}/__main__.py",
    "src/{package}/cli.py",
    "src/{package}/comparison.py",
    "src/{package}/compare.py",
    "src/{package}/contract.py",
    "src/{package}/errors.py",
    "src/{package}/evaluate.py",
    "src/{package}/explain.py",
    "src/{package}/metrics.py",
    "src/{package}/bundle.py",
    "src/{package}/card.py",
    "src/{package}/files.py",
    "src/{package}/task.py",
    "src/{package}/monitoring/__init__.py",
    "src/{package}/monitoring/checks.py",
    "src/{package}/monitoring/gauges.py",
    "src/{package}/monitoring/notify.py",
    "src/{package}/monitoring/records.py",
    "src/{package}/monitoring/run.py",
    "src/{package}/monitoring/verdict.py",
    "src/{package}/monitoring/window.py",
    "src/{package}/onnx_model.py",
    "src/{package}/pipeline.py",
    "src/{package}/prepare.py",
    "src/{package}/privacy.py",
    "src/{package}/processes.py",
    "src/{package}/profile.py",
    "src/{package}/py.typed",
    "src/{package}/registry.py",
    "src/{package}/retrain.py",
    "src/{package}/batches.py",
    "src/{package}/row_checks.py",
    "src/{package}/rows.py",
    "src/{package}/score.py",
    "src/{package}/search.py",
    "src/{package}/slices.py",
    "src/{package}/settings.py",
    "src/{package}/simulate.py",
    "src/{package}/tabular.py",
    "src/{package}/tracking.py",
    "src/{package}/train.py",
    "src/{package}/validate.py",
    "src/{package}/validation_report.py",
    "src/{package}/api/__init__.py",
    "src/{package}/api/answered.py",
    "src/{package}/api/batching.py",
    "src/{package}/api/deps.py",
    "src/{package}/api/main.py",
    "src/{package}/api/prediction_log.py",
    "src/{package}/api/problems.py",
    "src/{package}/api/rollout.py",
    "src/{package}/api/schemas.py",
    "src/{package}/api/server.py",
    "src/{package}/api/state.py",
    "src/{package}/api/telemetry.py",
    "src/{package}/api/routes/__init__.py",
    "src/{package}/api/routes/explain.py",
    "src/{package}/api/routes/health.py",
    "src/{package}/api/routes/metrics.py",
    "src/{package}/api/routes/model.py",
    "src/{package}/api/routes/predict.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/code/test_bundle.py",
    "tests/code/test_card.py",
    "tests/code/test_cli.py",
    "tests/code/test_manifests.py",
    "tests/code/test_contract.py",
    "tests/code/test_onnx.py",
    "tests/code/test_pipeline.py",
    "tests/code/test_prepare.py",
    "tests/code/test_processes.py",
    "tests/code/test_metrics.py",
    "tests/code/test_profile.py",
    "tests/code/test_batches.py",
    "tests/code/test_rows.py",
    "tests/code/test_score.py",
    "tests/code/test_slices.py",
    "tests/code/test_settings.py",
    "tests/code/test_structure.py",
    "tests/code/test_tabular.py",
    "tests/code/test_training_pieces.py",
    "tests/data/test_corrupted.py",
    "tests/data/test_gate_cli.py",
    "tests/data/test_sample.py",
    "tests/model/test_challenger.py",
    "tests/model/test_explain.py",
    "tests/model/test_lifecycle.py",
    "tests/monitoring/__init__.py",
    "tests/monitoring/conftest.py",
    "tests/monitoring/test_commands.py",
    "tests/monitoring/test_monitor.py",
    "tests/monitoring/test_notify.py",
    "tests/service/__init__.py",
    "tests/service/conftest.py",
    "tests/service/test_api.py",
    "tests/service/test_explain_api.py",
    "tests/service/test_rollout.py",
    "tests/service/test_hostile.py",
    "tests/service/test_internals.py",
    "tests/service/test_pages.py",
    "tests/service/test_prometheus.py",
    "tests/service/test_load.py",
    "tests/service/test_properties.py",
    "tests/service/test_startup.py",
}
UNRENDERED = re.compile(
    r"\{\{\s*cookiecutter|\{%-?\s*(if|else|elif|endif|for|endfor|raw|set|now)\b|cookiecutter\."
)


def files_of(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


def test_exact_file_set(baked: Path, answers: dict[str, str]) -> None:
    package = baked.name.replace("-", "_")
    expected = {path.format(package=package) for path in EXPECTED_FILES}
    if answers.get("license") == "Proprietary":
        expected.remove("LICENSE")
    assert files_of(baked) == expected


def test_no_unrendered_jinja(baked: Path) -> None:
    for path in baked.rglob("*"):
        relative = str(path.relative_to(baked))
        assert not UNRENDERED.search(relative), relative
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            match = UNRENDERED.search(text)
            assert match is None, f"{relative}: {match and match.group(0)}"


def test_every_data_file_parses(baked: Path) -> None:
    parsers: dict[str, Callable[[str], object]] = {
        "pyproject.toml": tomllib.loads,
        "uv.lock": tomllib.loads,
        "params.yaml": yaml.safe_load,
        "dvc.yaml": yaml.safe_load,
        "tracking_store.yaml": yaml.safe_load,
        "contract.yaml": yaml.safe_load,
        ".pre-commit-config.yaml": yaml.safe_load,
        "docker-compose.yml": yaml.safe_load,
        ".cruft.json": json.loads,
        ".dvc/config": lambda text: configparser.ConfigParser().read_string(text),
        ".secrets.baseline": json.loads,
    }
    # Workflows, manifests, Prometheus files: every document parses (validated further elsewhere).
    documents = [".github/**/*.yml", "k8s/**/*.yaml", "prometheus/*.yml", "grafana/**/*.yml"]
    for path in (path for pattern in documents for path in baked.glob(pattern)):
        parsers[str(path.relative_to(baked))] = lambda text: list(yaml.safe_load_all(text))
    for path in baked.glob("grafana/dashboards/*.json"):
        parsers[str(path.relative_to(baked))] = json.loads
    data_files = {
        str(path.relative_to(baked))
        for path in baked.rglob("*")
        if path.suffix in {".toml", ".yaml", ".yml", ".json", ".lock", ".baseline"}
        or path.parent.name == ".dvc"
    } - {".dvc/.gitignore"}
    assert data_files == set(parsers)
    for name, parse in parsers.items():
        parse((baked / name).read_text())


def test_answers_are_recorded_for_updates(baked: Path, answers: dict[str, str]) -> None:
    context = json.loads((baked / ".cruft.json").read_text())["context"]["cookiecutter"]
    for key, value in answers.items():
        assert context[key] == value
    assert context["package_name"] == baked.name.replace("-", "_")
    assert context["_template"]


def test_options_reach_the_project(baked: Path, answers: dict[str, str]) -> None:
    python_version = answers.get("python_version", "3.11")
    task = answers.get("task", "classification")
    license_id = answers.get("license", "MIT")
    assert (baked / ".python-version").read_text().strip() == python_version
    assert yaml.safe_load((baked / "params.yaml").read_text())["task"] == task
    contract = yaml.safe_load((baked / "contract.yaml").read_text())
    assert contract["target"]["type"] == ("category" if task == "classification" else "float")
    project = tomllib.loads((baked / "pyproject.toml").read_text())["project"]
    expected_license = "LicenseRef-Proprietary" if license_id == "Proprietary" else license_id
    assert project["license"] == expected_license
    assert project["name"] == baked.name


def test_sources_are_copied_verbatim(baked: Path) -> None:
    """No template logic in Python modules: the package is the template's src, byte for byte."""
    package = baked.name.replace("-", "_")
    template_src = TEMPLATE_PROJECT / "src" / "{{cookiecutter.package_name}}"
    sources = [path for path in template_src.rglob("*") if path.is_file()]
    assert len(sources) > 20
    for source in sources:
        copied = baked / "src" / package / source.relative_to(template_src)
        assert copied.read_bytes() == source.read_bytes(), copied


def test_lock_names_the_project(baked: Path) -> None:
    lock = tomllib.loads((baked / "uv.lock").read_text())
    own = [p for p in lock["package"] if p.get("source") == {"editable": "."}]
    assert [p["name"] for p in own] == [baked.name]


def test_the_project_installs_the_uv_the_template_pins() -> None:
    """Without uv on PATH the project's Makefile installs its own: the same version as here."""
    pin = re.compile(r"^UV_VERSION := (\S+)$", re.MULTILINE)
    template_pin = pin.findall((TEMPLATE / "Makefile").read_text())
    assert len(template_pin) == 1
    assert pin.findall((TEMPLATE_PROJECT / "Makefile").read_text()) == template_pin
