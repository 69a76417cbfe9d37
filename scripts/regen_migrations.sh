#!/usr/bin/env bash
# Before the first release the schema is one initial migration, regenerated from the
# models. After a release, use `uv run anxin makemigrations --name NAME` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f migrations/0*.py
uv run anxin makemigrations --name initial
