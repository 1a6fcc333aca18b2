#!/usr/bin/env bash
# Installs the Azure IoT SDK's TPM client (the oracle of test/integration/tpm-oracle.test.ts) into
# test/oracle/node_modules, apart from the project's own tree. It is kept out of devDependencies because
# tss.js depends on ffi-napi, and npm 10 (the npm of Node 20 and 22) would compile it on `npm ci`;
# here every install script is disabled, whatever the npm version. The oracle never needs ffi-napi: it
# reaches swtpm over TCP (test/support/sdk-tpm-oracle.ts).
set -euo pipefail
cd "$(dirname "$0")/../test/oracle"
# Up to date when npm's record of the installed tree is newer than the lockfile.
if [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
# The npm that runs `npm test` (npm_execpath), so that the oracle is installed by the same version.
npm=(npm)
case "${npm_execpath:-}" in *npm-cli.js) npm=(node "$npm_execpath") ;; esac
"${npm[@]}" ci --ignore-scripts --no-audit --no-fund --loglevel=error
