#!/usr/bin/env bash
# The mini-program's typed client (clients/miniprogram): Node.js from Debian when missing,
# the locked npm packages (npm ci), then the checks that make a breaking API change a
# compile error: the generated types match docs/openapi.json, and `tsc` (strict) passes.
set -euo pipefail
cd "$(dirname "$0")/../clients/miniprogram"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    elif [ -n "${CI:-}" ]; then
        echo "Node.js is missing and cannot be installed (not root)" >&2
        exit 1
    else
        echo "Node.js missing: the TypeScript client checks are skipped" >&2
        exit 0
    fi
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent verify
echo "TypeScript client: generated types current, tsc clean"
