#!/bin/sh
# What the UI suites need (tests/ui): Debian's Chromium for the Playwright browser tests
# (driven through executable_path=/usr/bin/chromium; `playwright install` is never run: it
# downloads a browser of its own) and npm's oidc-provider for the OIDC tests, installed from
# tests/ui/oidc_provider/package-lock.json. Playwright for Python is in requirements-test.txt.
# Idempotent: does nothing that is already done.
set -eu
cd "$(dirname "$0")/.."

bin/ensure-debian-packages chromium fonts-dejavu-core
if ! command -v npm >/dev/null 2>&1; then
    bin/ensure-debian-packages nodejs npm
fi

provider=tests/ui/oidc_provider
if [ ! -d "$provider/node_modules/oidc-provider" ] ||
    [ "$provider/package-lock.json" -nt "$provider/node_modules/.package-lock.json" ]; then
    (cd "$provider" && npm ci --no-audit --no-fund --loglevel=error)
fi
