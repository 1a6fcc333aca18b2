// Runs the test suites with node:test. Node 20's runner does not expand globs, so the files are listed here.
// Usage: node scripts/run-tests.mjs [unit|integration|nodes|e2e ...]   (default: all)
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const suites = process.argv.slice(2);
const wanted = suites.length > 0 ? suites : ["unit", "integration", "nodes", "e2e"];

function testFiles(dir) {
  let found = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return found;
  }
  for (const entry of entries.sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) found = found.concat(testFiles(path));
    else if (entry.endsWith(".test.ts")) found.push(relative(root, path));
  }
  return found;
}

const files = wanted.flatMap((suite) => testFiles(join(root, "test", suite)));
if (files.length === 0) {
  console.error(`no test files found for: ${wanted.join(", ")}`);
  process.exit(1);
}

const args = [
  "--import",
  "tsx",
  "--test",
  // A file whose process would not exit (a leaked handle) must not stall the whole run; leaks the product
  // could have are asserted by dedicated tests (open handles after redeploys, one connection per device).
  "--test-force-exit",
  "--test-timeout=180000",
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  "--test-reporter=./scripts/summary-reporter.mjs",
  "--test-reporter-destination=stdout",
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit" });
child.on("exit", (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
