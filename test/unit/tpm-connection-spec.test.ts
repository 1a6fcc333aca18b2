// The secret-free description of where a TPM is, as logs, errors and status text show it (pure logic).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_DEVICE_PATHS, describeConnection } from "../../src/tpm/connection-spec.js";

describe("TPM connection description", () => {
  it("names a device by its path, or the default paths in the order they are tried", () => {
    assert.equal(describeConnection({ kind: "device", path: "/dev/tpm1" }), "/dev/tpm1");
    assert.deepEqual(DEFAULT_DEVICE_PATHS, ["/dev/tpmrm0", "/dev/tpm0"]);
    assert.equal(describeConnection({ kind: "device" }), "/dev/tpmrm0 or /dev/tpm0");
  });

  it("names a simulator and a swtpm by host and command port", () => {
    assert.equal(
      describeConnection({ kind: "mssim", host: "10.0.0.5", port: 2321 }),
      "TPM simulator 10.0.0.5:2321",
    );
    assert.equal(
      describeConnection({ kind: "swtpm", host: "127.0.0.1", port: 2321, ctrlPort: 2322 }),
      "swtpm 127.0.0.1:2321",
    );
  });
});
