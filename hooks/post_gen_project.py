"""After rendering: refuse names that clash with a dependency, record the template, say what next.

cookiecutter removes the project folder when this hook fails, so a refusal leaves nothing behind.
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
SLUG, PACKAGE, TEMPLATE = ANSWERS["project_slug"], ANSWERS["package_name"], ANSWERS["_template"]
# Set by plain cookiecutter only; cruft writes .cruft.json itself.
REPO_DIR = ANSWERS.get("_repo_dir", "")
# Locked distributions whose import name is not their name (the lock only lists distributions).
# A template test checks this against every module a baked project's environment installs.
IMPORT_NAMES = {
    "scikit-learn": ["sklearn"],
    "pyyaml": ["yaml", "_yaml"],
    "python-dateutil": ["dateutil"],
    "attrs": ["attr"],
    "protobuf": ["google"],
    "google-auth": ["google"],
    "opentelemetry-api": ["opentelemetry"],
    "gitpython": ["git"],
    "python-dotenv": ["dotenv"],
    "ruamel-yaml": ["ruamel"],
    "antlr4-python3-runtime": ["antlr4"],
    "boolean-py": ["boolean"],
    "markdown-it-py": ["markdown_it"],
    "mlflow-skinny": ["mlflow"],
    "rpds-py": ["rpds"],
    "zc-lockfile": ["zc"],
    "flufl-lock": ["flufl"],
    "cyclonedx-python-lib": ["cyclonedx"],
    "packageurl-python": ["packageurl"],
    "py-serializable": ["py_serializable", "serializable"],
    "atpublic": ["public"],
    "configobj": ["validate"],
    "databricks-sdk": ["databricks"],
    "dynaconf": ["vendor_licenses"],
    "graphql-core": ["graphql"],
    "hydra-core": ["hydra"],
    "matplotlib": ["pylab", "mpl_toolkits"],
    "mypy": ["mypyc"],
    "omegaconf": ["pydevd_plugins"],
    "pip-requirements-parser": ["packaging_legacy_version"],
    "plotly": ["jupyterlab_plotly"],
    "pytest": ["py"],
}
# The project's own top-level folders, and Python's `test` package (not in stdlib_module_names).
OWN_NAMES = {"src", "tests", "test"}


def locked(path: Path = Path("uv.lock")) -> set[str]:
    """Every distribution the rendered lock pins, the project itself left out."""
    lock = tomllib.loads(path.read_text())
    return {
        package["name"]
        for package in lock["package"]
        if not {"editable", "virtual"} & set(package.get("source", {}))
    }


def reserved_imports(names: set[str]) -> set[str]:
    """Import names a package called so would shadow: the locked ones, the project's, Python's."""
    imports = {name.replace("-", "_") for name in names} | OWN_NAMES | set(sys.stdlib_module_names)
    return imports | {alias for name in names for alias in IMPORT_NAMES.get(name, [])}


def clash() -> str | None:
    names = locked()
    if SLUG in names:
        return (
            f"project_slug {SLUG!r} is the name of a locked dependency (uv cannot lock both); "
            f"fix: choose e.g. '{SLUG}-service'"
        )
    if PACKAGE in reserved_imports(names):
        return (
            f"package_name {PACKAGE!r} clashes with the module {PACKAGE!r} the project imports "
            f"or ships; fix: choose e.g. '{PACKAGE}_service'"
        )
    return None


def template_dir() -> Path | None:
    """The template folder, absolute; cookiecutter runs this hook from inside it."""
    if Path(REPO_DIR).is_absolute():
        return Path(REPO_DIR)
    parent = Path(f"/proc/{os.getppid()}/cwd")  # Linux: the baking process's working folder
    return parent.resolve() if parent.exists() else None


def record_template() -> None:
    """A plain cookiecutter bake records the template's commit and path, as cruft does."""
    if not REPO_DIR:  # cruft: it writes .cruft.json itself
        return
    folder = template_dir()
    command = ["git", "-C", str(folder), "rev-parse", "HEAD"]
    head = subprocess.run(command, capture_output=True, text=True, check=False) if folder else None
    if head is None or head.returncode != 0:
        print("note: the template is not a git checkout, so .cruft.json records no commit")
        return
    state = json.loads(Path(".cruft.json").read_text())
    remote = "://" in TEMPLATE or TEMPLATE.startswith(("git@", "gh:", "gl:", "bb:"))
    state["template"] = TEMPLATE if remote else str(folder)
    state["commit"] = head.stdout.strip()
    state["context"]["cookiecutter"]["_template"] = state["template"]
    Path(".cruft.json").write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    message = clash()
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    if ANSWERS["license"] == "Proprietary":
        Path("LICENSE").unlink()
    record_template()
    # This hook runs inside the new project: its path is right whatever --output-dir was.
    print(f"Baked {SLUG}. Next: cd {Path.cwd()} && make setup pipeline   (`make` lists every task)")
