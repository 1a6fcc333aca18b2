// Which registered device a client certificate stands for at the emulated hub: the thumbprint of a self-signed
// device, or a trusted chain with CN == device id for a CA device; only enabled devices of the served hubs.
// The certificate info comes from the server side of a real loopback TLS connection.
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { connect, createServer, type TLSSocket } from "node:tls";
import type { PeerCertificateInfo } from "../../src/emulator/hub/device-connections.js";
import { DeviceStore } from "../../src/emulator/hub/device-store.js";
import { matchX509Device, peerCertificateInfo } from "../../src/emulator/hub/link-authorization.js";
import type { HubDeviceRecord } from "../../src/emulator/hub/types.js";
import { createTestPki } from "../support/test-certs.js";

const HUB_A = "hub-a.azure-devices.net";
const HUB_B = "Hub-B.azure-devices.net";
const SHA1 = "A".repeat(40);
const SHA256 = "B".repeat(64);
const OTHER_SHA1 = "C".repeat(40);

function store(...devices: HubDeviceRecord[]): DeviceStore {
  const result = new DeviceStore();
  for (const device of devices) result.upsert(device);
  return result;
}

function selfSigned(
  hubHostName: string,
  deviceId: string,
  primaryThumbprint: string,
  secondaryThumbprint?: string,
) {
  return {
    hubHostName,
    deviceId,
    status: "enabled" as const,
    authentication: {
      type: "selfSigned" as const,
      x509Thumbprint: { primaryThumbprint, ...(secondaryThumbprint ? { secondaryThumbprint } : {}) },
    },
  };
}

function caDevice(hubHostName: string, deviceId: string, status: "enabled" | "disabled" = "enabled") {
  return { hubHostName, deviceId, status, authentication: { type: "certificateAuthority" as const } };
}

const peer = (extra: Partial<PeerCertificateInfo> = {}): PeerCertificateInfo => ({
  sha1: SHA1,
  sha256: SHA256,
  chainTrusted: false,
  ...extra,
});

describe("hub X.509 device match", () => {
  it("takes a self-signed device by its primary or secondary thumbprint, SHA-1 or SHA-256", () => {
    const hubs = [HUB_A];
    assert.equal(matchX509Device(store(selfSigned(HUB_A, "d1", SHA1)), hubs, peer(), "d1")?.deviceId, "d1");
    assert.equal(matchX509Device(store(selfSigned(HUB_A, "d1", SHA256)), hubs, peer(), "d1")?.deviceId, "d1");
    assert.equal(
      matchX509Device(store(selfSigned(HUB_A, "d1", OTHER_SHA1, SHA256)), hubs, peer(), "d1")?.deviceId,
      "d1",
    );
    assert.equal(matchX509Device(store(selfSigned(HUB_A, "d1", OTHER_SHA1)), hubs, peer(), "d1"), undefined);
    assert.equal(
      matchX509Device(
        store(selfSigned(HUB_A, "d1", OTHER_SHA1)),
        hubs,
        peer({ chainTrusted: true, commonName: "d1" }),
        "d1",
      ),
      undefined,
      "a trusted chain does not stand in for the enrolled thumbprint",
    );
  });

  it("takes a CA device only with a trusted chain and its own id as CN", () => {
    const devices = store(caDevice(HUB_A, "d1"));
    assert.equal(
      matchX509Device(devices, [HUB_A], peer({ chainTrusted: true, commonName: "d1" }), "d1")?.deviceId,
      "d1",
    );
    assert.equal(
      matchX509Device(devices, [HUB_A], peer({ chainTrusted: false, commonName: "d1" }), "d1"),
      undefined,
    );
    assert.equal(
      matchX509Device(devices, [HUB_A], peer({ chainTrusted: true, commonName: "D1" }), "d1"),
      undefined,
    );
    assert.equal(matchX509Device(devices, [HUB_A], peer({ chainTrusted: true }), "d1"), undefined);
  });

  it("never takes a key device, a disabled device, or a device of a hub this listener does not serve", () => {
    const keyDevice: HubDeviceRecord = {
      hubHostName: HUB_A,
      deviceId: "d1",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: Buffer.alloc(32).toString("base64") } },
    };
    const trusted = peer({ chainTrusted: true, commonName: "d1" });
    assert.equal(matchX509Device(store(keyDevice), [HUB_A], trusted, "d1"), undefined);
    assert.equal(
      matchX509Device(store(caDevice(HUB_A, "d1", "disabled")), [HUB_A], trusted, "d1"),
      undefined,
    );
    assert.equal(matchX509Device(store(caDevice(HUB_A, "d1")), [HUB_B], trusted, "d1"), undefined);
    assert.equal(
      matchX509Device(store(caDevice(HUB_A, "d1")), [HUB_A.toUpperCase()], trusted, "d1")?.hubHostName,
      HUB_A,
    );
  });

  it("prefers the hub the connection named, in any case, and otherwise the first match", () => {
    const devices = store(caDevice(HUB_A, "d1"), caDevice(HUB_B, "d1"));
    const trusted = peer({ chainTrusted: true, commonName: "d1" });
    const hubs = [HUB_A, HUB_B];
    assert.equal(
      matchX509Device(devices, hubs, trusted, "d1", "hub-b.AZURE-devices.net")?.hubHostName,
      HUB_B,
    );
    assert.equal(matchX509Device(devices, hubs, trusted, "d1", HUB_A)?.hubHostName, HUB_A);
    assert.equal(matchX509Device(devices, hubs, trusted, "d1")?.hubHostName, HUB_A);
    assert.equal(matchX509Device(devices, hubs, trusted, "d1", "elsewhere")?.hubHostName, HUB_A);
  });
});

describe("hub client certificate info", () => {
  const pki = createTestPki();

  /** The server side of a real loopback TLS connection made with `client`'s certificate (or none). */
  async function serverSocket(client?: {
    cert: string;
    key: string;
  }): Promise<{ socket: TLSSocket; done(): void }> {
    const server = createServer({
      key: pki.serverKey,
      cert: pki.serverCert,
      ca: [pki.caCert],
      requestCert: true,
      rejectUnauthorized: false,
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const accepted = once(server, "secureConnection") as Promise<[TLSSocket]>;
    const connection = connect({
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      servername: "localhost",
      ca: pki.caCert,
      ...(client ?? {}),
    });
    const [socket] = await accepted;
    return {
      socket,
      done: () => {
        connection.destroy();
        socket.destroy();
        server.close();
      },
    };
  }

  it("gives the thumbprints in upper case, the CN, and a trusted chain only when the CA is configured", async () => {
    const device = pki.issueClientCert("d1");
    const connection = await serverSocket(device);
    const socket = connection.socket;
    try {
      assert.deepEqual(peerCertificateInfo(socket, true), {
        sha1: device.thumbprint,
        sha256: device.thumbprintSha256,
        commonName: "d1",
        chainTrusted: true,
      });
      assert.equal(peerCertificateInfo(socket, false)?.chainTrusted, false);
    } finally {
      connection.done();
    }
  });

  it("does not trust a self-signed certificate, and has nothing without a certificate or a socket", async () => {
    const device = pki.issueClientCert("d2", { selfSigned: true });
    const signedByItself = await serverSocket(device);
    try {
      const info = peerCertificateInfo(signedByItself.socket, true);
      assert.equal(info?.sha1, device.thumbprint);
      assert.equal(info?.chainTrusted, false);
    } finally {
      signedByItself.done();
    }
    const anonymous = await serverSocket();
    try {
      assert.equal(peerCertificateInfo(anonymous.socket, true), undefined);
    } finally {
      anonymous.done();
    }
    assert.equal(peerCertificateInfo(undefined, true), undefined);
  });
});
