#!/usr/bin/env bash
# Renders the Helm chart (deploy/helm/wiki-farm-portal) and validates every manifest against
# the Kubernetes schemas, the ServiceMonitor against the prometheus-operator's, and checks
# compose.yaml (docker-compose config, and that its healthchecks use the probes).
# Installs what it needs: a venv of its own (.venv/deploy-tools, from
# .ci/requirements-deploy.txt), the npm package of .ci/servicemonitor, Debian's docker-compose.
# Idempotent; called from .ci/run's lint section. Why this renderer: docs/adr/0007-*.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bin/ensure-debian-packages python3 python3-venv docker-compose
if ! command -v npm >/dev/null 2>&1; then
  bin/ensure-debian-packages nodejs npm
fi

tools=.venv/deploy-tools
stamp="$tools/.installed-$(sha256sum .ci/requirements-deploy.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q -r .ci/requirements-deploy.txt
  touch "$stamp"
fi

monitor=.ci/servicemonitor
if [ ! -d "$monitor/node_modules/@kubernetes-models/prometheus-operator" ] ||
  [ "$monitor/package-lock.json" -nt "$monitor/node_modules/.package-lock.json" ]; then
  (cd "$monitor" && npm ci --no-audit --no-fund --loglevel=error)
fi

# compose.yaml as Compose itself reads it (no Docker daemon needed for `config`).
DJANGO_SECRET_KEY=ci-only docker-compose -f compose.yaml config -q
echo "ok docker-compose config"

"$tools/bin/python" .ci/validate_deploy.py
