#!/usr/bin/env bash
# Before `npm test`: the system packages the suites use, the npm packages on a fresh clone, and a build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-packages.sh swtpm chromium
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
