// Mutation testing (StrykerJS): small bugs are put into the code that must be right, one at a time, and the
// tests that cover each one are run; a bug no test notices is a "surviving mutant". See docs/mutation-testing.md.
// Run: npm run test:mutation            (everything below; slow: not part of npm test)
//      npm run test:mutation -- --mutate src/device/backoff.ts   (one file; the tests stay the same)
// node:test files run one process each through Stryker's TAP runner (node prints TAP when piped), with tsx
// for TypeScript; coverage is per test file, so a mutant runs only the files that reach its code.

/** What must be right: the TPM client, the device session, the emulator's authentication and attestation,
 *  and the message contract of the Node-RED adapters. */
const mutate = [
  "src/tpm/**/*.ts",
  "src/device/**/*.ts",
  "src/common/sas.ts",
  "src/common/group-key.ts",
  "src/emulator/tpm-activation.ts",
  "src/emulator/dps/credentials.ts",
  "src/emulator/dps/registration-service.ts",
  "src/emulator/hub/cbs-token-check.ts",
  "src/emulator/hub/link-authorization.ts",
  "src/emulator/hub/device-credentials.ts",
  "src/nodes/azure-iot-telemetry.ts",
  "src/nodes/shared/messages.ts",
  "src/nodes/shared/telemetry-options.ts",
  // barrels and types only
  "!src/**/index.ts",
  "!src/**/types.ts",
];

/** The tests that exercise that code. Browser and CLI tests stay out: they add minutes and no coverage. */
const testFiles = [
  "test/unit/*.test.ts",
  // Left out: it starts Node-RED on the built package (lib/), which the sandbox does not copy, in a process of its
  // own that no mutant reaches.
  "test/nodes/!(tpm-identity-permission).test.ts",
  "test/integration/tpm-*.test.ts",
  "test/integration/dps-*.test.ts",
  "test/integration/hub-authentication.test.ts",
  "test/integration/device-session.test.ts",
  "test/integration/device-dependencies-tpm.test.ts",
  "test/integration/device-provisioning.test.ts",
  "test/integration/device-hub-connection.test.ts",
  "test/integration/fault-suite.test.ts",
];

/** A narrower run: MUTATION_TESTS="test/unit/device-backoff.test.ts,test/unit/device-retry-policy.test.ts". */
const chosenTests = process.env.MUTATION_TESTS?.split(",").filter(Boolean);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate,
  testRunner: "tap",
  tap: {
    testFiles: chosenTests ?? testFiles,
    // {{hookFile}} is Stryker's coverage hook; it must load before tsx so it sees every module.
    nodeArgs: ["-r", "{{hookFile}}", "--import", "tsx", "--test-force-exit", "--test-timeout=60000"],
    forceBail: true,
  },
  coverageAnalysis: "perTest",
  // Only mutants whose code or covering tests changed run again; the file stays local (git-ignored).
  incremental: true,
  incrementalFile: "reports/stryker-incremental.json",
  reporters: ["html", "clear-text", "progress", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  // A shared machine: one test process at a time unless asked (--concurrency N).
  concurrency: 1,
  // Tests with TLS, swtpm and retries are slow; a mutant that makes them hang counts as killed by timeout.
  timeoutMS: 15_000,
  timeoutFactor: 2,
  // The initial run of every test file takes more than Stryker's default of 5 minutes on two cores.
  dryRunTimeoutMinutes: 30,
  thresholds: { high: 90, low: 80, break: null },
  ignorePatterns: ["lib", "reports", "test-artifacts", ".demo", "bench", "docs"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
