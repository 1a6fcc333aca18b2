#!/usr/bin/env bash
# Before `npm test`: the system packages the suites use, the npm packages on a fresh clone, the SDK's TPM
# client used as a test oracle (in a folder of its own, see scripts/install-tpm-oracle.sh), and a build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-packages.sh swtpm chromium tinyproxy
# The npm that runs `npm test` (npm_execpath), not whichever npm is first on PATH.
npm=(npm)
case "${npm_execpath:-}" in *npm-cli.js) npm=(node "$npm_execpath") ;; esac
[ -d node_modules ] || "${npm[@]}" ci --no-audit --no-fund
bash scripts/install-tpm-oracle.sh
npm run build --silent
