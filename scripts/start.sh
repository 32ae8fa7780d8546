#!/usr/bin/env bash
# The README's start command: brings Node 24 and the dependencies, then runs the local relay.
# Options are those of `petrel dev` (see `bash scripts/start.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
exec npx --no-install petrel dev "$@"
