#!/usr/bin/env bash
# The README's test command: installs what the tests need (Node 24, npm packages, swaks,
# nats-server 2.12 and the Kubernetes control plane built with Go), runs the checks, then every test in one node:test run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step is logged with the time, so a slow run shows where its time went.
step() { echo "petrel: $(date -u +%H:%M:%S) $*" >&2; }
step "installing Node 24 and the npm packages"
source scripts/install.sh

# Real SMTP peers (swaks) and a real DNS server for the SPF/DKIM/DMARC tests (dnsmasq, which
# lives in /usr/sbin) from Debian's packages.
apt_missing=()
command -v swaks >/dev/null 2>&1 || apt_missing+=(swaks)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || apt_missing+=(dnsmasq-base)
/usr/bin/python3 -c 'import dkim, dns.resolver, nacl' >/dev/null 2>&1 || apt_missing+=(python3-dkim) # dkimpy: the tests' independent DKIM verifier
if [ "${#apt_missing[@]}" -gt 0 ]; then
  step "installing ${apt_missing[*]} (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_missing[@]}" >&2
fi
# Postfix as a real relaying client (test/harness/src/postfix.ts runs private instances), with
# Cyrus SASL client mechanisms; the system instance the package starts is stopped again.
if [ ! -x /usr/sbin/postfix ] || ! ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1; then
  step "installing postfix libsasl2-modules (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postfix libsasl2-modules >&2
  if $sudo_cmd postfix status >/dev/null 2>&1; then $sudo_cmd postfix stop >&2; fi
fi
# Build (or find) nats-server once, before test files run in parallel.
step "nats-server"
node scripts/prepare-tools.ts
# The operator tests' control plane (kube-apiserver, etcd, kubectl), built with Go once and cached.
step "envtest assets (kube-apiserver, etcd, kubectl)"
step "envtest assets: $(npm run -s envtest:assets)"

step "lint, proto, types"
npm run -s lint
npm run -s proto:lint
npm run -s proto:check
npm run -s typecheck >/dev/null

step "tests"
# `npm test` runs node:test with --test-force-exit, so that a test file that leaves a handle open
# ends when its tests have (its exit hooks still kill what it started) instead of stalling the run,
# and --test-timeout, which bounds every test and hook. scripts/test-report-blocking.ts, preloaded,
# keeps the forced exit from dropping a file's last verdicts (the count would shrink, and pass).
npm run -s test
step "done"
