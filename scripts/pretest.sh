#!/usr/bin/env bash
# Before `npm test`: the system packages the suites use, the npm packages on a fresh clone, the SDK's TPM
# client used as a test oracle (in a folder of its own, see scripts/install-tpm-oracle.sh), and a build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-packages.sh swtpm chromium
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/install-tpm-oracle.sh
npm run build --silent
