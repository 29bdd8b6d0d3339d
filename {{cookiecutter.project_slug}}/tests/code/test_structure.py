"""The code's shape: each concept has one home, and the pipeline declares all the code it runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = next((PROJECT_ROOT / "src").glob("*/cli.py")).parent
STAGE_COMMANDS = re.compile(r"^\S+ (\w+)(?: --[\w-]+)*$")
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_files(path: Path, tree: ast.AST) -> set[Path]:
    """This package's modules that `path` imports, at module level or inside functions."""
    found: set[Path] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        target = base.joinpath(*(node.module or "").split(".")) if node.module else base
        candidates = [target.with_suffix(".py"), target / "__init__.py"]
        candidates += [target / f"{alias.name}.py" for alias in node.names]
        found |= {candidate for candidate in candidates if candidate.is_file()}
    # Importing a subpackage's module runs the subpackage's __init__ first.
    return found | {f.parent / "__init__.py" for f in found if (f.parent / "__init__.py").is_file()}


def _closure(start: set[Path]) -> set[Path]:
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imported_files(path, ast.parse(path.read_text()))
    return seen


def _command_code(command: str) -> set[Path]:
    """Every module of the package the CLI command `command` runs."""
    cli = PACKAGE / "cli.py"
    tree = ast.parse(cli.read_text())
    module_level = ast.Module(
        body=[node for node in tree.body if isinstance(node, ast.ImportFrom)], type_ignores=[]
    )
    [function] = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == command
    ]
    start = _imported_files(cli, module_level) | _imported_files(cli, function)
    # cli.py itself runs, but only this command's imports: the others are inside their functions.
    return _closure(start) | {cli, PACKAGE / "__init__.py"}


def _stages() -> dict[str, dict[str, object]]:
    stages: dict[str, dict[str, object]] = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())[
        "stages"
    ]
    return stages


@pytest.mark.parametrize("stage", list(_stages()))
def test_each_stage_depends_on_every_module_its_command_runs(stage: str) -> None:
    declared = _stages()[stage]
    match = STAGE_COMMANDS.match(str(declared["cmd"]))
    assert match, f"stage {stage}: cmd is not one CLI command"
    src = f"src/{PACKAGE.name}"
    deps = {str(dep).replace("${src}", src) for dep in declared["deps"]}  # type: ignore[attr-defined]
    needed = {str(path.relative_to(PROJECT_ROOT)) for path in _command_code(match.group(1))}
    assert sorted(needed - deps) == [], f"dvc.yaml stage {stage} lacks these deps"
    stale = {dep for dep in deps if dep.startswith(src)} - needed
    assert sorted(stale) == [], f"dvc.yaml stage {stage} lists code its command does not run"


def test_no_task_is_named_outside_the_task_module() -> None:
    names = re.compile(r"""["'](classification|regression)["']""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in _modules()
        if path.name != "task.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if names.search(line)
    ]
    assert offenders == [], "task-specific code belongs in task.py"


def test_functions_stay_short() -> None:
    long_ones = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert long_ones == []


def test_each_constant_has_one_home() -> None:
    """A module-level UPPER_CASE name is assigned in one module only (imports share it)."""
    homes: dict[str, list[str]] = {}
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    homes.setdefault(target.id, []).append(str(path.relative_to(PACKAGE)))
    repeated = {name: places for name, places in homes.items() if len(places) > 1}
    assert repeated == {}
