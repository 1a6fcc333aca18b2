// Runs the test suites with node:test and ends with one line CI can read: "N passed, N failed, N skipped".
// Node 20's runner does not expand globs, so the files are listed here.
// Usage: node scripts/run-tests.mjs [unit|nodes|integration|e2e ...]   (default: all)
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const suites = process.argv.slice(2);
const wanted = suites.length > 0 ? suites : ["unit", "nodes", "integration", "e2e"];

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
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });

// The spec reporter closes with "ℹ pass N" / "ℹ fail N" / "ℹ skipped N" / "ℹ cancelled N"; keep them.
const totals = { pass: 0, fail: 0, skipped: 0, cancelled: 0 };
let pending = "";
child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  pending += chunk.toString();
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    const match = /^ℹ (pass|fail|skipped|cancelled) (\d+)$/.exec(line.trim());
    if (match) totals[match[1]] = Number(match[2]);
  }
});
child.on("exit", (code, signal) => {
  const failed = totals.fail + totals.cancelled;
  process.stdout.write(`\n${totals.pass} passed, ${failed} failed, ${totals.skipped} skipped\n`);
  process.exit(signal ? 1 : (code ?? 1));
});
