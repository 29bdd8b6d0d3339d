"""Settings come from params.yaml and the environment, and bad values are named clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.errors import (
    ProjectError,
)
from {{ cookiecutter.package_name }}.settings import (
    ENV_PREFIX,
    load_settings,
)

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit_params(project_dir: Path, section: str, key: str, value: object) -> None:
    path = project_dir / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params))


def test_project_params_load(project_dir: Path) -> None:
    settings = load_settings()
    assert settings.task.name in {"classification", "regression"}
    assert 0 < settings.data.production_fraction < 1
    assert settings.validation.min_rows >= 1


def test_environment_overrides_params(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}VALIDATION__MIN_ROWS", "7")
    assert load_settings().validation.min_rows == 7


def test_unknown_key_is_named(project_dir: Path) -> None:
    edit_params(project_dir, "validation", "min_rowz", 5)
    with pytest.raises(ProjectError, match=r"unknown setting 'validation\.min_rowz'"):
        load_settings()


def test_wrong_type_names_key_and_environment_variable(project_dir: Path) -> None:
    edit_params(project_dir, "data", "seed", "forty-two")
    with pytest.raises(ProjectError) as raised:
        load_settings()
    message = str(raised.value)
    assert "setting 'data.seed' = 'forty-two'" in message
    assert f"${ENV_PREFIX}DATA__SEED" in message


def test_out_of_range_value_is_rejected(project_dir: Path) -> None:
    edit_params(project_dir, "data", "production_fraction", 1.5)
    with pytest.raises(ProjectError, match=r"data\.production_fraction.*less than 1"):
        load_settings()


def test_bad_environment_value_is_rejected(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}TASK", "clustering")
    with pytest.raises(ProjectError, match=r"setting 'task' = 'clustering'"):
        load_settings()


def test_missing_params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match=r"params\.yaml not found"):
        load_settings()


def test_invalid_yaml(project_dir: Path) -> None:
    (project_dir / "params.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ProjectError, match="not valid YAML"):
        load_settings()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"x": {"low": 2, "high": 1}}, r"train\.search\.space\.x.*`low` must be below `high`"),
        ({"x": {"low": 0, "high": 1, "log": True}}, r"space\.x.*log-scale range needs `low`"),
        ({"x": {"choices": []}}, r"space\.x.*non-empty `choices`"),
        ({"x": {"choices": [1], "low": 0}}, r"space\.x.*either a non-empty `choices`"),
        ({}, r"train\.search.*trials asked but `space` names no hyperparameter"),
    ],
)
def test_a_bad_search_space_is_named_before_anything_runs(
    project_dir: Path, space: dict[str, object], message: str
) -> None:
    edit_params(project_dir, "train", "search", {"trials": 3, "space": space})
    with pytest.raises(ProjectError, match=message):
        load_settings()


def test_the_search_is_off_by_default(project_dir: Path) -> None:
    """The quick demo trains once; the range in params.yaml is ready for `trials: N`."""
    search = load_settings().train.search
    assert search.trials == 0
    assert search.space
