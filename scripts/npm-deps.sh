#!/usr/bin/env bash
# Installs the npm packages pinned by tests/e2e/js/package-lock.json (the CloudEvents JS SDK),
# only when they are missing or the lock file changed.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/js"
[ -f "$dir/package-lock.json" ] || exit 0
stamp="$dir/node_modules/.herald-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
    exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
cp "$dir/package-lock.json" "$stamp"
