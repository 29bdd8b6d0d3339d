"""Reject bad answers before any file is written (cookiecutter then removes the project folder)."""

import keyword
import re
import sys

ANSWERS = {
    "project_slug": "{{ cookiecutter.project_slug }}",
    "package_name": "{{ cookiecutter.package_name }}",
    "author_email": "{{ cookiecutter.author_email }}",
    "python_version": "{{ cookiecutter.python_version }}",
}
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# Import names the generated project depends on or ships: a package with one of these names
# would shadow it.
RESERVED = {
    "dvc",
    "evidently",
    "fastapi",
    "great_expectations",
    "mlflow",
    "numpy",
    "pandas",
    "pydantic",
    "pydantic_settings",
    "pytest",
    "scipy",
    "sklearn",
    "scikit_learn",
    "starlette",
    "typer",
    "uvicorn",
    "yaml",
    "src",
    "tests",
}


def problem() -> str | None:
    slug, package = ANSWERS["project_slug"], ANSWERS["package_name"]
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        return (
            f"project_slug {slug!r} is not a valid slug; fix: use lowercase letters, digits "
            "and single hyphens, starting with a letter, e.g. 'churn-model'"
        )
    if not package.isidentifier() or not package.isascii() or package != package.lower():
        return (
            f"package_name {package!r} is not a lowercase Python identifier; fix: use lowercase "
            "letters, digits and underscores, starting with a letter, e.g. 'churn_model'"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return f"package_name {package!r} is a Python keyword; fix: choose e.g. '{package}_model'"
    if package in RESERVED or package in sys.stdlib_module_names:
        return (
            f"package_name {package!r} clashes with the module {package!r} the project imports; "
            f"fix: choose e.g. '{package}_service'"
        )
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", ANSWERS["author_email"]):
        return (
            f"author_email {ANSWERS['author_email']!r} is not an email address; "
            "fix: use the form name@example.com"
        )
    if ANSWERS["python_version"] not in SUPPORTED_PYTHONS:
        return (
            f"python_version {ANSWERS['python_version']!r} is not supported; "
            f"fix: choose one of {', '.join(SUPPORTED_PYTHONS)}"
        )
    return None


if __name__ == "__main__":
    message = problem()
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
