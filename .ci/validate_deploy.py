"""Render the Helm chart, validate every manifest it makes, and check compose.yaml's probes.

Run by .ci/validate-deploy.sh with the Python of its own venv: helm-python-sdk renders with
Helm's own Go engine (offline, as `helm template` does), kubernetes-validate holds the
Kubernetes API's JSON schemas. The ServiceMonitor is a custom resource, not in those
schemas: it is checked against the prometheus-operator's schema by .ci/servicemonitor/.
Exits non-zero with what is wrong.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "wiki-farm-portal"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate has.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
# What an install must give (the chart refuses to render without it); everything else is
# the chart's default.
REQUIRED: dict[str, Any] = {
    "secret": {
        "values": {
            "DJANGO_SECRET_KEY": "ci-only-not-a-secret",
            "DATABASE_URL": "mysql://portal:pw@mariadb:3306/portal",
            "CELERY_BROKER_URL": "redis://redis:6379/0",
        }
    }
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


CASES: dict[str, dict[str, Any]] = {
    "defaults": REQUIRED,
    "servicemonitor-and-hpa": merged(
        REQUIRED,
        {
            "secret": {"values": {"FARM_METRICS_TOKEN": "ci-only-token"}},
            "serviceMonitor": {"enabled": True},
            "workerDefaults": {"autoscaling": {"enabled": True}},
        },
    ),
    "existing-secret-and-claim": {
        "secret": {"existingSecret": "portal-env"},
        "exports": {"existingClaim": "wiki-exports"},
        "metrics": {"workerPort": 0},
    },
}


class Invalid(Exception):
    pass


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="farm", namespace="wikis", is_install=True)
    manifests = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for manifest in yaml.safe_load_all(text):
            if manifest:
                manifest["__template"] = template
                manifests.append(manifest)
    return manifests


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def settings_queues() -> set[str]:
    """The queues in portal/settings.py's CELERY_TASK_QUEUES (its Queue("...") calls)."""
    tree = ast.parse((ROOT / "portal" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Queue"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def name_of(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def validate_schemas(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every built-in kind against the Kubernetes schemas (strict: no unknown fields);
    returns the custom resources, which those schemas do not hold."""
    custom = []
    for manifest in manifests:
        body = {k: v for k, v in manifest.items() if k != "__template"}
        if body["apiVersion"] == "monitoring.coreos.com/v1":
            custom.append(body)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(body, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                raise Invalid(
                    f"{name_of(manifest)} ({manifest['__template']}) is invalid for "
                    f"Kubernetes {version} at {path}: {exc.message}"
                ) from exc
    return custom


def validate_servicemonitors(resources: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for index, resource in enumerate(resources):
            path = Path(folder) / f"servicemonitor-{index}.json"
            path.write_text(json.dumps(resource))
            files.append(str(path))
        result = subprocess.run(  # noqa: S603 (our own script, our own files)
            ["node", str(ROOT / ".ci" / "servicemonitor" / "validate.mjs"), *files],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    say(result.stdout.rstrip())
    if result.returncode != 0:
        raise Invalid(result.stderr.strip() or "ServiceMonitor validation failed")


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return manifest["spec"]["template"]["spec"]["containers"]


def by_component(manifests: list[dict[str, Any]], kind: str, component: str) -> list[dict]:
    return [
        m
        for m in manifests
        if m["kind"] == kind
        and m["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]


def check_web(manifests: list[dict[str, Any]]) -> None:
    (web,) = by_component(manifests, "Deployment", "web")
    (container,) = containers(web)
    probes = {
        kind: container.get(kind, {}).get("httpGet", {}).get("path")
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    if probes != {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }:
        raise Invalid(f"web probes are {probes}")
    hosts = {e["name"]: e.get("value") for e in container["env"]}
    if "$(POD_IP)" not in hosts.get("DJANGO_ALLOWED_HOSTS", ""):
        raise Invalid("web: the pod IP is not an allowed host: probes and Prometheus get a 400")
    if not by_component(manifests, "Service", "web"):
        raise Invalid("no web Service")


def check_workers(manifests: list[dict[str, Any]], autoscaling: bool) -> None:
    pools = chart_values()["workerPools"]
    deployments = {
        m["metadata"]["labels"]["wiki-farm-portal/pool"]: m
        for m in by_component(manifests, "Deployment", "worker")
    }
    if sorted(deployments) != sorted(pool["name"] for pool in pools):
        raise Invalid(f"worker Deployments {sorted(deployments)} are not the pools {pools}")
    consumed: set[str] = set()
    for pool in pools:
        deployment = deployments[pool["name"]]
        (container,) = containers(deployment)
        command = " ".join(container["command"])
        queues = re.search(r"worker -Q (\S+)", command)
        if not queues or queues.group(1).split(",") != pool["queues"]:
            raise Invalid(f"pool {pool['name']} does not consume {pool['queues']}: {command}")
        consumed.update(pool["queues"])
        node = re.search(r"-n (\S+)@%h", command)
        ping = " ".join(container["livenessProbe"]["exec"]["command"])
        if not node or f"-d {node.group(1)}@$HOSTNAME" not in ping:
            raise Invalid(f"pool {pool['name']}: the liveness ping does not name its node")
        scaled = autoscaling and pool.get("autoscaling", {}).get("enabled", True)
        if scaled and "replicas" in deployment["spec"]:
            raise Invalid(f"pool {pool['name']}: replicas set beside an HPA (they would fight)")
    missing = settings_queues() - consumed
    if missing:
        raise Invalid(f"no worker pool consumes the queues {sorted(missing)} (settings)")
    hpas = {
        m["spec"]["scaleTargetRef"]["name"]
        for m in manifests
        if m["kind"] == "HorizontalPodAutoscaler"
    }
    expected = {
        deployments[pool["name"]]["metadata"]["name"]
        for pool in pools
        if autoscaling and pool.get("autoscaling", {}).get("enabled", True)
    }
    if hpas != expected:
        raise Invalid(f"HPAs target {sorted(hpas)}, expected {sorted(expected)}")


def check_beat_and_migrations(manifests: list[dict[str, Any]]) -> None:
    (beat,) = by_component(manifests, "Deployment", "beat")
    if beat["spec"]["replicas"] != 1 or beat["spec"]["strategy"]["type"] != "Recreate":
        raise Invalid("beat must be one replica with the Recreate strategy")
    (job,) = by_component(manifests, "Job", "migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    if hooks != {"pre-install", "pre-upgrade"}:
        raise Invalid(f"the migration Job's hooks are {hooks}")
    if containers(job)[0]["command"] != ["python", "manage.py", "migrate", "--no-input"]:
        raise Invalid("the migration Job does not run manage.py migrate --no-input")


def check_refuses_without_secrets() -> None:
    try:
        render({})
    except helm.HelmError as exc:
        if "DJANGO_SECRET_KEY is required" not in str(exc):
            raise Invalid(f"rendering without secrets failed otherwise: {exc}") from exc
        return
    raise Invalid("the chart rendered without DJANGO_SECRET_KEY and DATABASE_URL")


def check_compose() -> None:
    """compose.yaml's probes: the web's is /readyz, each Celery worker answers a ping under
    the node name it runs with, and its workers consume every queue."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    web_probe = " ".join(services["web"]["healthcheck"]["test"])
    if "/readyz" not in web_probe:
        raise Invalid(f"compose web healthcheck does not use /readyz: {web_probe}")
    consumed: set[str] = set()
    for name, service in services.items():
        command = " ".join(service.get("command") or [])
        if "celery" not in command or " worker" not in command:
            continue
        queues = re.search(r"-Q (\S+)", command)
        consumed.update(queues.group(1).split(",") if queues else settings_queues())
        node = re.search(r"-n (\S+)@%h", command)
        probe = " ".join(service.get("healthcheck", {}).get("test", []))
        expected = f"-d {node.group(1) if node else 'celery'}@$$HOSTNAME"
        if "inspect ping" not in probe or expected not in probe:
            raise Invalid(f"compose {name}: healthcheck {probe!r} does not ping {expected}")
    missing = settings_queues() - consumed
    if missing:
        raise Invalid(f"no compose worker consumes the queues {sorted(missing)}")
    say("ok compose.yaml: web probes /readyz; every worker answers a ping; all queues consumed")


def main() -> int:
    say(f"renderer: helm-python-sdk {helm.__version__} (Helm {helm.helm_sdk_version()})")
    try:
        lint = helm.lint(str(CHART), REQUIRED, strict=True)
        problems = [m for m in lint["messages"] if m["severity"] >= 2] + lint["errors"]
        if problems:
            raise Invalid(f"helm lint --strict: {problems}")
        say("ok helm lint --strict")
        for case, values in CASES.items():
            manifests = render(values)
            custom = validate_schemas(manifests)
            check_web(manifests)
            autoscaling = bool(
                values.get("workerDefaults", {}).get("autoscaling", {}).get("enabled")
            )
            check_workers(manifests, autoscaling)
            check_beat_and_migrations(manifests)
            if values.get("serviceMonitor", {}).get("enabled"):
                if len(custom) != 1:
                    raise Invalid(f"{case}: expected one ServiceMonitor, got {len(custom)}")
                validate_servicemonitors(custom)
            elif custom:
                raise Invalid(f"{case}: a ServiceMonitor although it is off")
            kinds = sorted({m["kind"] for m in manifests})
            say(
                f"ok chart ({case}): {len(manifests)} manifests ({', '.join(kinds)}) valid for "
                f"Kubernetes {' and '.join(KUBERNETES_VERSIONS)}"
            )
        check_refuses_without_secrets()
        say("ok the chart refuses to render without its required secrets")
        check_compose()
    except Invalid as exc:
        sys.stderr.write(f"INVALID: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
