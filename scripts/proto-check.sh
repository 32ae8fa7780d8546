#!/usr/bin/env bash
# Regenerating the protobuf code must give exactly what is committed.
set -euo pipefail
cd "$(dirname "$0")/../proto"
buf generate
cd ..
if [ -n "$(git status --porcelain -- packages/proto/src/gen)" ]; then
  echo "packages/proto/src/gen is stale: run npm run proto:gen and commit the result" >&2
  git status --porcelain -- packages/proto/src/gen >&2
  exit 1
fi
