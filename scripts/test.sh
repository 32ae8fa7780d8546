#!/usr/bin/env bash
# The README's test command: installs what the tests need (Node 24, npm packages, swaks,
# nats-server 2.12 built with Go), runs the checks, then every test in one node:test run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh

# Real SMTP peers from Debian's packages.
if ! command -v swaks >/dev/null 2>&1; then
  echo "petrel: installing swaks (apt-get)" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq swaks >&2
fi
# Build (or find) nats-server once, before test files run in parallel.
node scripts/prepare-tools.ts

echo "petrel: lint, proto, types" >&2
npm run -s lint
npm run -s proto:lint
npm run -s proto:check
npm run -s typecheck >/dev/null

echo "petrel: tests" >&2
npm run -s test
