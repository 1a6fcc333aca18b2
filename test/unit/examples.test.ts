// The example flows (Import > Examples): importable side by side, wired to our registered types, and each
// telling a palette user how to run it on the emulator that comes with the package.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const examplesDir = join(__dirname, "..", "..", "examples");
type FlowNode = Record<string, unknown> & { id: string; type: string };
const examples = readdirSync(examplesDir)
  .filter((file) => file.endsWith(".json"))
  .map((file) => ({
    file,
    nodes: JSON.parse(readFileSync(join(examplesDir, file), "utf8")) as FlowNode[],
  }));

const CONFIG_TYPES = ["provisio-azure-dps", "provisio-azure-tpm", "provisio-azure-device"];

describe("example flows", () => {
  it("are nine, and no node id is used by two of them (config nodes included)", () => {
    assert.equal(examples.length, 9);
    const owner = new Map<string, string>();
    for (const { file, nodes } of examples) {
      for (const node of nodes) {
        assert.equal(owner.get(node.id), undefined, `${node.id} is in ${owner.get(node.id)} and ${file}`);
        owner.set(node.id, file);
      }
    }
  });

  it("use our registered types only, and their config references resolve in the same file", () => {
    for (const { file, nodes } of examples) {
      const ids = new Set(nodes.map((node) => node.id));
      for (const node of nodes) {
        assert.doesNotMatch(node.type, /^azure-iot-/, `${file}: ${node.id} uses the old type name`);
        for (const field of ["device", "dps", "tpm"]) {
          const reference = node[field];
          if (node.type.startsWith("provisio-azure-") && typeof reference === "string" && reference) {
            assert.ok(ids.has(reference), `${file}: ${node.id}.${field} -> ${reference}`);
          }
        }
      }
      for (const type of CONFIG_TYPES) {
        assert.ok(nodes.filter((node) => node.type === type).length <= 1, `${file} has at most one ${type}`);
      }
    }
  });

  it("each say how to run them on the packaged emulator, with the DPS address it prints", () => {
    for (const { file, nodes } of examples) {
      const info = nodes
        .filter((node) => node.type === "comment")
        .map((node) => (typeof node.info === "string" ? node.info : ""))
        .join("\n");
      assert.match(info, /npx azure-iot-local --data-dir \S+ --amqp-port 25671/, file);
      assert.match(info, /AZURE_IOT_DPS_ENDPOINT=localhost:25671/, file);
      assert.match(info, /Read TPM identity/, file);
      assert.doesNotMatch(info, /curl|:5671\b/, `${file}: no curl line, no hub port as DPS address`);
    }
  });
});
