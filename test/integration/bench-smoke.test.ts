// The benchmark in its short form, so it cannot rot: every figure is measured (ours and its baseline), the
// table is printed and the JSON written. No thresholds: speed is judged by `npm run bench`, not by tests.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";

interface Spread {
  min: number;
  median: number;
  max: number;
}

describe("npm run bench -- --smoke", () => {
  it("measures every figure beside its baseline, prints the table and writes the JSON", async () => {
    const dir = await mkdtemp(join(tmpdir(), "provisio-bench-smoke-"));
    try {
      const out = join(dir, "results.json");
      const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke", "--out", out], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      assert.equal(code, 0, stderr);
      const result = JSON.parse(await readFile(out, "utf8")) as {
        smoke: boolean;
        figures: Array<{ name: string; baselineName: string; ours: Spread; baseline: Spread; ratio: number }>;
      };
      assert.equal(result.smoke, true);
      const names = result.figures.map((f) => f.name);
      for (const wanted of [
        "telemetry, 1 at a time",
        "telemetry, 64 callers",
        "telemetry, all at once",
        "telemetry through Node-RED, all at once",
        "start to connected, symmetric key",
        "start to connected, TPM on swtpm",
        "RSS per connected device, 1 device",
        "RSS per connected device, 10 devices",
        "10 devices from one enrollment group, time to all connected",
        "telemetry, 64 callers, outbox on disk",
        "outbox on disk: write 2000",
        "outbox on disk: replay 2000 after restart",
        "latency p50, 64 callers",
        "twin reports, 1 at a time",
        "twin reports, all at once",
        "TPM activation",
      ]) {
        assert.ok(names.includes(wanted), `${wanted} in ${names.join(", ")}`);
      }
      const baselines = result.figures.map((f) => f.baselineName);
      assert.ok(baselines.includes("bare rhea sender, all at once (ceiling)"), baselines.join(", "));
      for (const f of result.figures) {
        for (const value of [f.ours.median, f.baseline.median, f.ratio]) {
          assert.ok(Number.isFinite(value) && value > 0, `${f.name}: ${value}`);
        }
        assert.ok(stdout.includes(`| ${f.name} |`), `${f.name} in the printed table`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
