#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages that building, testing and benchmarking Herald need.
# Idempotent: runs `apt-get update` and `apt-get install` only when something is missing.
# Usage: scripts/deps.sh [build|test|bench]   (each level includes the ones before it)
set -euo pipefail
level=${1:-test}

pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
      libsqlite3-dev libssl-dev libyaml-dev libhttp-parser-dev)
if [ "$level" = test ] || [ "$level" = bench ]; then
    pkgs+=(libcmocka-dev python3 nodejs npm clang libclang-rt-14-dev llvm openssl)
fi
if [ "$level" = bench ]; then
    pkgs+=(nginx-light redis-server nats-server libnats-dev wrk linux-perf)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# nodejs/npm may come from elsewhere on a dev machine; a working `node` and `npm` is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for p in "${missing[@]}"; do
        case "$p" in nodejs|npm) ;; *) filtered+=("$p") ;; esac
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
