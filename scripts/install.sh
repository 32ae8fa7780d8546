# shellcheck shell=bash
# Sourced by start.sh and test.sh: Node 24 on PATH, then `npm ci` when the lockfile changed
# since the last install (always on CI).
source "$(dirname "${BASH_SOURCE[0]}")/node24.sh"
petrel_stamp="$petrel_root/node_modules/.petrel-lock.sha256"
petrel_lock_sum="$(sha256sum "$petrel_root/package-lock.json" | cut -d' ' -f1)"
if [ -n "${CI:-}" ] || [ ! -f "$petrel_stamp" ] || [ "$(cat "$petrel_stamp")" != "$petrel_lock_sum" ]; then
  echo "petrel: installing dependencies (npm ci)" >&2
  (cd "$petrel_root" && npm ci --loglevel=error >&2)
  echo "$petrel_lock_sum" > "$petrel_stamp"
fi
