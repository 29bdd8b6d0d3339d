"""What a valid answer is: the one home of the rules the prompts and the hooks apply.

cookiecutter loads this module as a Jinja extension (`_extensions` in cookiecutter.json; it puts
the template folder on `sys.path`, as cruft does). That lets an answer be refused right after it
is typed, with one line and no traceback, instead of after every prompt by a failed hook.
"""

from __future__ import annotations

import functools
import keyword
import re
import sys
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

TEMPLATE_DIR = Path(__file__).resolve().parent
# The template's lock: the locked names are the same whatever the answers.
LOCK = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "uv.lock"
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Kubernetes names are built from the slug: "<slug>-production" must fit a 63-character label.
MAX_SLUG = 52
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


def suggested_slug(answer: str) -> str:
    """The answer transliterated and collapsed (cookiecutter ships python-slugify)."""
    from slugify import slugify

    slug = slugify(answer, max_length=40, word_boundary=True)
    return f"ml-{slug}" if slug[:1].isdigit() else slug or "ml-service"


@functools.cache
def locked(path: Path = LOCK) -> frozenset[str]:
    """Every distribution the lock pins, the project itself left out (parsed once: 0.2 s)."""
    lock = tomllib.loads(path.read_text())
    return frozenset(
        package["name"]
        for package in lock["package"]
        if not {"editable", "virtual"} & set(package.get("source", {}))
    )


def reserved_imports(names: frozenset[str]) -> set[str]:
    """Import names a package called so would shadow: the locked ones, the project's, Python's."""
    imports = {name.replace("-", "_") for name in names} | OWN_NAMES | set(sys.stdlib_module_names)
    return imports | {alias for name in names for alias in IMPORT_NAMES.get(name, [])}


def slug_problem(slug: str) -> str | None:
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        return (
            f"project_slug {slug!r} is not a valid slug; fix: use lowercase letters, digits "
            f"and single hyphens, starting with a letter, e.g. {suggested_slug(slug)!r}"
        )
    if len(slug) > MAX_SLUG:
        return (
            f"project_slug {slug!r} has {len(slug)} characters; Kubernetes names built from it "
            f"allow {MAX_SLUG}; fix: shorten it, e.g. {slug[:MAX_SLUG].rstrip('-')!r}"
        )
    if slug in locked():
        return (
            f"project_slug {slug!r} is the name of a locked dependency (uv cannot lock both); "
            f"fix: choose e.g. '{slug}-service'"
        )
    return None


def package_problem(package: str) -> str | None:
    if not package.isidentifier() or not package.isascii() or package != package.lower():
        return (
            f"package_name {package!r} is not a lowercase Python identifier; fix: use lowercase "
            "letters, digits and underscores, starting with a letter, e.g. 'churn_model'"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"package_name {package!r} is a Python keyword; fix: choose e.g. '{package}_model'"
    if package in reserved_imports(locked()):
        return (
            f"package_name {package!r} clashes with the module {package!r} the project imports "
            f"or ships; fix: choose e.g. '{package}_service'"
        )
    return None


def text_problem(field: str, text: str) -> str | None:
    if any(unicodedata.category(char) == "Cc" for char in text):
        return f"{field} holds a control character; fix: type it again as plain text"
    return None


def email_problem(email: str) -> str | None:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        return f"author_email {email!r} is not an email address; fix: use the form name@example.com"
    return None


def python_problem(version: str) -> str | None:
    if version not in SUPPORTED_PYTHONS:
        return (
            f"python_version {version!r} is not supported; "
            f"fix: choose one of {', '.join(SUPPORTED_PYTHONS)}"
        )
    return None


def problem(field: str, answers: Mapping[str, Any]) -> str | None:
    """What is wrong with one answer, or None."""
    value = str(answers[field])
    if field == "project_slug":
        return slug_problem(value)
    if field == "package_name":
        return package_problem(value)
    if field == "author_email":
        return email_problem(value)
    if field == "python_version":
        return python_problem(value)
    return text_problem(field, value)


CHECKED = (
    "project_slug",
    "package_name",
    "description",
    "author_name",
    "author_email",
    "python_version",
)


def refusal(answers: Mapping[str, Any]) -> str | None:
    """The first problem among all answers (the pre-generation hook: a replayed answer file)."""
    return next(filter(None, (problem(field, answers) for field in CHECKED)), None)


def refuse_invalid(answers: Mapping[str, Any], field: str) -> str:
    """Stop the bake at this answer: one line on stderr, no traceback, nothing written yet.

    A replay file from an older template lacks this check and is prompted for it alone, without
    the answer: the pre-generation hook checks that one."""
    message = problem(field, answers) if field in answers else None
    if message:
        raise SystemExit(f"error: {message}")
    return ""


class AnswerChecks(Extension):
    """Filters `refuse_invalid` (for the prompts) and `refusal` (for the hooks), and the
    template's absolute folder as `template_dir`, whatever path the bake was given."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["refuse_invalid"] = refuse_invalid
        environment.filters["refusal"] = refusal
        environment.globals["template_dir"] = str(TEMPLATE_DIR)
