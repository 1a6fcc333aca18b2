// The "Read TPM identity" endpoint opens a device or a socket on the runtime's machine, so a real Node-RED
// with users serves it to those who may change the flows only: a read-only editor user is refused.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { startNodeRed, type NodeRedProcess } from "../support/e2e-node-red.js";

const ADMIN_AUTH = `adminAuth: {
    type: "credentials",
    // Nobody logs in here (API tokens below); the hash is a placeholder that matches no password.
    users: [
      { username: "reader", password: "$2b$08$invalidinvalidinvalidinvalidinvalidinvalidinvalidinvali", permissions: "read" },
      { username: "editor", password: "$2b$08$invalidinvalidinvalidinvalidinvalidinvalidinvalidinvali", permissions: "*" },
    ],
    tokens: [
      { token: "reader-token", user: "reader", scope: ["read"] },
      { token: "editor-token", user: "editor", scope: ["*"] },
    ],
  },`;

describe("TPM identity endpoint permissions (real Node-RED)", () => {
  let nodeRed: NodeRedProcess;

  before(async () => {
    nodeRed = await startNodeRed({ packageDir: join(__dirname, "..", ".."), extraSettings: ADMIN_AUTH });
  });

  after(async () => {
    await nodeRed?.stop();
  });

  async function post(token: string | undefined): Promise<number> {
    const answer = await fetch(`${nodeRed.url}/provisio-azure-tpm/identity`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ kind: "device", devicePath: "/etc/passwd" }),
    });
    return answer.status;
  }

  it("refuses anonymous and read-only users, and lets an editor through to the path check", async () => {
    // Node-RED answers a missing permission with 401, as it does a missing login.
    assert.equal(await post(undefined), 401);
    assert.equal(await post("reader-token"), 401);
    assert.equal(await post("editor-token"), 400, "an editor reaches the request's own checks");
  });
});
