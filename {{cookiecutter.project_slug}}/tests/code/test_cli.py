"""The CLI answers --help without heavy imports, reports bad input in one line, phones no one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "{{ cookiecutter.package_name }}"
HEAVY_MODULES = ("pandas", "sklearn", "great_expectations", "dvc", "mlflow", "matplotlib")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def test_help_lists_every_stage() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in (
        "prepare",
        "profile",
        "validate",
        "train",
        "evaluate",
        "promote",
        "rollback",
        "models",
    ):
        assert command in result.stdout


def test_cli_import_loads_no_heavy_module() -> None:
    probe = (
        f"import sys, {PACKAGE}.cli; "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_outside_the_project_root_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: params.yaml not found in {tmp_path}; fix: run the command from the project root"
    )


def test_profile_does_not_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1.5,a\n2.5,b\n")
    existing = tmp_path / "contract.yaml"
    existing.write_text("keep me")
    result = run_cli("profile", str(data), "--target", "y", "-o", str(existing))
    assert result.returncode == 2
    assert "already exists; fix: pass --force" in result.stderr
    assert "Traceback" not in result.stderr
    assert existing.read_text() == "keep me"


def test_profile_writes_a_loadable_contract(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1.5,a\n2.5,b\n3.5,a\n")
    output = tmp_path / "contract.yaml"
    result = run_cli("profile", str(data), "--target", "y", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert (
        "target: {name: y, type: category, allowed: [a, b], nullable: false}" in output.read_text()
    )


def test_profile_never_makes_the_target_nullable_and_counts_unlabelled_rows(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1.5,a\n2.5,\n3.5,b\n4.5,\n")
    output = tmp_path / "contract.yaml"
    result = run_cli("profile", str(data), "--target", "y", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert "target: {name: y, type: category, allowed: [a, b], nullable: false}" in (
        output.read_text()
    )
    assert "warning: 2 of 4 rows have no y; `prepare` leaves them out" in result.stderr
    assert "note: 'b' is the positive class (f1, precision, recall, roc_auc); to make it 'a', " in (
        result.stderr
    )


def _bare_environment(home: Path) -> dict[str, str]:
    """A user's shell: no CI or pytest variable (MLflow would then stay quiet by itself)."""
    return {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(home)}


def test_a_command_that_uses_mlflow_writes_nothing_home(tmp_path: Path) -> None:
    """MLflow 3's default: an installation id in ~/.config/mlflow and usage events sent."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    for name in ("params.yaml", "contract.yaml", "tracking_store.yaml"):
        shutil.copy(name, project / name)
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "models"],
        capture_output=True, text=True, cwd=project, env=_bare_environment(home),
        check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no registered versions yet" in result.stdout  # MLflow made and read its store
    assert [path.relative_to(home) for path in home.rglob("*")] == []


def test_dvc_sends_no_usage_report() -> None:
    """Every dvc command would otherwise spawn a daemon that posts a report to DVC's makers."""
    dvc = Path(sys.executable).parent / "dvc"
    result = subprocess.run(  # `dvc config` reads .dvc/config as any dvc command does
        [str(dvc), "config", "--show-origin", "core.analytics"],
        capture_output=True, text=True, env=_bare_environment(Path.cwd()), check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [".dvc/config", "false"]
