// The transport-independent DPS of the emulator, driven directly: who a device is (symmetric key, X.509, TPM),
// the register -> assigning -> assigned/failed/disabled operation, hub allocation and reprovisioning, and what
// lands in the IoT hub's registry. The enrollment store and the hub's device store are the emulator's own; the
// front ends (AMQP, HTTPS, MQTT) that translate wire formats to these calls are tested in test/integration.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { after, afterEach, before, describe, it, mock } from "node:test";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { deriveDeviceKey } from "../../src/common/group-key.js";
import { EnrollmentStore } from "../../src/emulator/dps/enrollment-store.js";
import { DpsError, DPS_ERROR } from "../../src/emulator/dps/errors.js";
import type { DpsHubs, LinkedHub } from "../../src/emulator/dps/hub-link.js";
import {
  RegistrationService,
  type DeviceIdentity,
  type RegistrationServiceOptions,
} from "../../src/emulator/dps/registration-service.js";
import type { EnrollmentGroup, IndividualEnrollment } from "../../src/emulator/dps/types.js";
import { DeviceStore } from "../../src/emulator/hub/device-store.js";
import { parseActivationBlob } from "../../src/tpm/activation-blob.js";
import { TPM_ALG, TPMA_OBJECT } from "../../src/tpm/constants.js";
import { TpmWriter } from "../../src/tpm/marshal.js";
import { createTestPki } from "../support/test-certs.js";

const ID_SCOPE = "0ne00REGSVC";
const HUB_A = "hub-a.azure-devices.net";
const HUB_B = "hub-b.azure-devices.net";
const key = (): string => randomBytes(32).toString("base64");

/** The emulator's hub device store behind the registry and twin service DPS writes to. */
function hubs(linkedHubs: LinkedHub[] = [{ hostName: HUB_A }]) {
  const devices = new DeviceStore();
  const deleted: string[] = [];
  const dpsHubs: DpsHubs = {
    linkedHubs,
    registry: {
      upsertDevice: (device, twin) => void devices.upsert(device, twin),
      getDevice: (hub, id) => devices.get(hub, id),
      deleteDevice: (hub, id) => {
        deleted.push(`${hub}/${id}`);
        return devices.delete(hub, id);
      },
    },
    service: { getTwin: (hub, id) => devices.twinDocument(hub, id) },
  };
  return { dpsHubs, devices, deleted };
}

function setup(options: Partial<RegistrationServiceOptions> = {}, linkedHubs?: LinkedHub[]) {
  const store = new EnrollmentStore();
  const hub = hubs(linkedHubs);
  const service = new RegistrationService({ idScope: ID_SCOPE, store, hubs: hub.dpsHubs, ...options });
  return { store, service, ...hub };
}

async function token(registrationId: string, signingKey: Buffer | string, fields: { scope?: string } = {}) {
  const keyBytes = typeof signingKey === "string" ? Buffer.from(signingKey, "base64") : signingKey;
  const resource = `${fields.scope ?? ID_SCOPE}/registrations/${registrationId}`;
  return buildSasToken(
    resource,
    Math.floor(Date.now() / 1000) + 3600,
    (data) => hmacSha256(keyBytes, data),
    "registration",
  );
}

function refused(status: number, errorCode: number, message: string | RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof DpsError, `not a DpsError: ${String(error)}`);
    assert.equal(error.status, status);
    assert.equal(error.errorCode, errorCode);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}
const unauthorized = (message: string | RegExp) => refused(401, DPS_ERROR.unauthorized, message);

/** Registers and polls until the operation has its result (the assignment runs in the background). */
async function provision(service: RegistrationService, identity: DeviceIdentity, body: unknown = {}) {
  const started = service.register(identity, body);
  assert.equal(started.status, "assigning");
  for (let i = 0; i < 200; i++) {
    const status = service.operationStatus(identity, started.operationId);
    if (status.status !== "assigning") return status.registrationState!;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("the operation never left assigning");
}

async function skIdentity(service: RegistrationService, registrationId: string, signingKey: string) {
  return service.authenticateSymmetricKey(registrationId, await token(registrationId, signingKey));
}

const skEnrollment = (
  registrationId: string,
  extra: Partial<IndividualEnrollment> = {},
): IndividualEnrollment => ({
  registrationId,
  attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
  ...extra,
});

// ---- TPM public keys as a device sends them: TPM2B_PUBLIC of an RSA storage key ----
function storagePublic(modulusBits = 1024): Buffer {
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: modulusBits });
  const modulus = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
  const area = new TpmWriter()
    .u16(TPM_ALG.RSA)
    .u16(TPM_ALG.SHA256)
    .u32(TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent)
    .sized(Buffer.alloc(0))
    .u16(TPM_ALG.AES)
    .u16(128)
    .u16(TPM_ALG.CFB)
    .u16(TPM_ALG.NULL)
    .u16(modulusBits)
    .u32(0)
    .sized(modulus)
    .toBuffer();
  return new TpmWriter().sized(area).toBuffer();
}
const EK = storagePublic();
const SRK = storagePublic();
const OTHER_EK = storagePublic();

// One CA with the device certificates the tests present, and a self-signed certificate that signed none of them.
const pki = createTestPki();
const otherCa = pki.issueClientCert("Provisio Other CA", { selfSigned: true });
const x509Device = pki.issueClientCert("x509-1");
const x509Other = pki.issueClientCert("x509-1");
const groupMember = pki.issueClientCert("member-1");

describe("DPS registration service: symmetric key attestation", () => {
  it("takes an individual enrollment's primary or secondary key, and gives the device both", async () => {
    const { store, service } = setup();
    const enrolled = store.putIndividualEnrollment(skEnrollment("sk-1"));
    const keys = enrolled.attestation.symmetricKey!;
    for (const signing of [keys.primaryKey, keys.secondaryKey!]) {
      const identity = await skIdentity(service, "sk-1", signing);
      assert.equal(identity.attestation, "symmetricKey");
      assert.equal(identity.registrationId, "sk-1");
      assert.equal(identity.enrollment.kind, "individual");
      assert.equal(identity.enrollment.value.registrationId, "sk-1");
      assert.deepEqual(identity.attestation === "symmetricKey" && identity.deviceKeys, {
        primaryKey: keys.primaryKey,
        secondaryKey: keys.secondaryKey,
      });
    }
  });

  it("refuses an individual enrollment of another kind, a bad token, or an id nothing enrolls", async () => {
    const { store, service } = setup();
    store.putIndividualEnrollment({
      registrationId: "tpm-1",
      attestation: { type: "tpm", tpm: { endorsementKey: EK.toString("base64") } },
    });
    assert.throws(
      () => service.authenticateSymmetricKey("tpm-1", "SharedAccessSignature sr=x&sig=y&se=1"),
      unauthorized("the enrollment does not use symmetric key attestation"),
    );
    store.putIndividualEnrollment(skEnrollment("sk-1"));
    assert.throws(
      () => service.authenticateSymmetricKey("sk-1", undefined),
      unauthorized("malformed SAS token"),
    );
    await assert.rejects(
      async () => skIdentity(service, "sk-1", key()),
      unauthorized("SAS token signature is not valid"),
    );
    assert.throws(
      () => service.authenticateSymmetricKey("nobody", undefined),
      unauthorized("no enrollment for this registration id"),
    );
  });

  it("takes a key derived from a symmetric key group's primary or secondary key, past groups of another kind", async () => {
    const { store, service } = setup();
    store.putEnrollmentGroup({
      enrollmentGroupId: "x509-group",
      attestation: { type: "x509", x509: { signingCertificates: { primary: { certificate: pki.caCert } } } },
    });
    store.putEnrollmentGroup({
      enrollmentGroupId: "other-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
    });
    const group = store.putEnrollmentGroup({
      enrollmentGroupId: "sk-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
    });
    const keys = group.attestation.symmetricKey!;
    const derived = {
      primaryKey: deriveDeviceKey(keys.primaryKey, "member-1"),
      secondaryKey: deriveDeviceKey(keys.secondaryKey!, "member-1"),
    };
    for (const signing of [derived.primaryKey, derived.secondaryKey]) {
      const identity = await skIdentity(service, "member-1", signing);
      assert.equal(identity.enrollment.kind, "group");
      assert.equal(identity.enrollment.value.enrollmentGroupId, "sk-group");
      assert.deepEqual(identity.attestation === "symmetricKey" && identity.deviceKeys, derived);
    }
  });

  it("reports the last group's refusal when no group takes the token", async () => {
    const { store, service } = setup();
    store.putEnrollmentGroup({
      enrollmentGroupId: "sk-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
    });
    await assert.rejects(
      async () =>
        service.authenticateSymmetricKey(
          "member-1",
          await token("member-1", key(), { scope: "0ne00OTHER1" }),
        ),
      unauthorized("SAS token audience does not match the registration"),
    );
  });
});

describe("DPS registration service: X.509 attestation", () => {
  const leafPem = x509Device.cert;
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(pki.caCert);

  it("takes the enrolled certificate, primary or secondary, of an individual enrollment", () => {
    const { store, service } = setup();
    store.putIndividualEnrollment({
      registrationId: "x509-1",
      attestation: { type: "x509", x509: { clientCertificates: { primary: { certificate: leafPem } } } },
    });
    const identity = service.authenticateX509("x509-1", [leaf]);
    assert.equal(identity.attestation, "x509");
    assert.equal(identity.enrollment.kind, "individual");
    assert.equal(identity.attestation === "x509" && identity.leaf, leaf);
    store.putIndividualEnrollment({
      registrationId: "x509-1",
      attestation: {
        type: "x509",
        x509: {
          clientCertificates: {
            primary: { certificate: x509Other.cert },
            secondary: { certificate: leafPem },
          },
        },
      },
    });
    assert.equal(service.authenticateX509("x509-1", [leaf]).registrationId, "x509-1");
  });

  it("refuses another certificate, an enrollment of another kind, a leaf for another id, and no chain", () => {
    const { store, service } = setup();
    store.putIndividualEnrollment({
      registrationId: "x509-1",
      attestation: {
        type: "x509",
        x509: { clientCertificates: { primary: { certificate: x509Other.cert } } },
      },
    });
    assert.throws(
      () => service.authenticateX509("x509-1", [leaf]),
      unauthorized("the client certificate is not the enrolled certificate"),
    );
    store.putIndividualEnrollment(skEnrollment("x509-1"));
    assert.throws(
      () => service.authenticateX509("x509-1", [leaf]),
      unauthorized("the client certificate is not the enrolled certificate"),
    );
    assert.throws(
      () => service.authenticateX509("x509-2", [leaf]),
      unauthorized("client certificate CN does not match the registration id"),
    );
    assert.throws(() => service.authenticateX509("x509-1", []), unauthorized("no client certificate"));
  });

  it("takes a chain to a group's primary or secondary signing certificate, past groups of another kind", () => {
    const { store, service } = setup();
    store.putEnrollmentGroup({
      enrollmentGroupId: "sk-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
    });
    store.putEnrollmentGroup({
      enrollmentGroupId: "x509-group",
      attestation: {
        type: "x509",
        x509: {
          signingCertificates: {
            primary: { certificate: otherCa.cert },
            secondary: { certificate: pki.caCert },
          },
        },
      },
    });
    const identity = service.authenticateX509("x509-1", [leaf, ca]);
    assert.equal(identity.enrollment.kind, "group");
    assert.equal(identity.enrollment.value.enrollmentGroupId, "x509-group");
    assert.equal(identity.attestation === "x509" && identity.leaf, leaf);
  });

  it("refuses a chain that leads to no group's signing certificate", () => {
    const { store, service } = setup();
    store.putEnrollmentGroup({
      enrollmentGroupId: "x509-group",
      attestation: {
        type: "x509",
        x509: { signingCertificates: { primary: { certificate: otherCa.cert } } },
      },
    });
    assert.throws(
      () => service.authenticateX509("x509-1", [leaf, ca]),
      unauthorized("the client certificate does not chain to an enrolled certificate"),
    );
  });
});

describe("DPS registration service: TPM attestation", () => {
  const enrollTpm = (
    store: EnrollmentStore,
    registrationId = "tpm-1",
    extra: Partial<IndividualEnrollment> = {},
  ) =>
    store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "tpm", tpm: { endorsementKey: EK.toString("base64") } },
      ...extra,
    });

  it("challenges the enrolled EK with an activation blob and a fresh 32-byte session key, then takes a token signed with it", async () => {
    const { store, service } = setup();
    enrollTpm(store);
    const first = service.issueTpmChallenge("tpm-1", EK, SRK);
    const second = service.issueTpmChallenge("tpm-1", EK, SRK);
    assert.equal(first.sessionKey.length, 32);
    assert.notDeepEqual(first.sessionKey, second.sessionKey);
    assert.equal(parseActivationBlob(first.activationBlob).identityKeyPublic.length > 0, true);
    const challenge = { sessionKey: first.sessionKey, endorsementKey: EK, storageRootKey: SRK };
    const identity = service.authenticateTpm("tpm-1", await token("tpm-1", first.sessionKey), challenge);
    assert.equal(identity.attestation, "tpm");
    assert.equal(identity.registrationId, "tpm-1");
    assert.equal(identity.enrollment.kind, "individual");
    assert.equal(identity.attestation === "tpm" && identity.endorsementKey, EK);
    assert.equal(identity.attestation === "tpm" && identity.storageRootKey, SRK);
    await assert.rejects(
      async () => service.authenticateTpm("tpm-1", await token("tpm-1", second.sessionKey), challenge),
      unauthorized("SAS token signature is not valid"),
    );
  });

  it("refuses another EK, an id without a TPM enrollment, and an unusable SRK (400, saying why)", () => {
    const { store, service } = setup();
    enrollTpm(store);
    store.putIndividualEnrollment(skEnrollment("sk-1"));
    assert.throws(
      () => service.issueTpmChallenge("tpm-1", OTHER_EK, SRK),
      unauthorized("the endorsement key is not the enrolled one"),
    );
    assert.throws(
      () => service.issueTpmChallenge("sk-1", EK, SRK),
      unauthorized("no TPM enrollment for this registration id"),
    );
    assert.throws(
      () => service.issueTpmChallenge("nobody", EK, SRK),
      unauthorized("no TPM enrollment for this registration id"),
    );
    assert.throws(
      () => service.issueTpmChallenge("tpm-1", EK, Buffer.from([0, 2, 0, 1])),
      refused(400, DPS_ERROR.badRequest, /^malformed TPM public key: /),
    );
    const { publicKey: small } = generateKeyPairSync("rsa", { modulusLength: 512 });
    const tinySrk = new TpmWriter()
      .sized(
        // the SRK's area with a 512-bit modulus: too small for an OAEP-encrypted seed
        Buffer.concat([
          SRK.subarray(2, SRK.length - 128 - 2),
          new TpmWriter().sized(Buffer.from(small.export({ format: "jwk" }).n!, "base64url")).toBuffer(),
        ]),
      )
      .toBuffer();
    assert.throws(
      () => service.issueTpmChallenge("tpm-1", EK, tinySrk),
      refused(400, DPS_ERROR.badRequest, "the RSA key is too small to carry the DUPLICATE seed"),
    );
    const sessionKey = randomBytes(32);
    assert.throws(
      () =>
        service.authenticateTpm("tpm-1", "SharedAccessSignature sr=x&sig=y&se=1", {
          sessionKey,
          endorsementKey: OTHER_EK,
          storageRootKey: SRK,
        }),
      unauthorized("the endorsement key is not the enrolled one"),
    );
  });

  it("gives the device its hub key in a fresh activation blob and registers it with that key", async () => {
    const { store, service, devices } = setup();
    enrollTpm(store, "tpm-1", { deviceId: "tpm-device" });
    const challenge = service.issueTpmChallenge("tpm-1", EK, SRK);
    const identity = service.authenticateTpm("tpm-1", await token("tpm-1", challenge.sessionKey), {
      sessionKey: challenge.sessionKey,
      endorsementKey: EK,
      storageRootKey: SRK,
    });
    const result = await provision(service, identity);
    assert.equal(result.status, "assigned");
    assert.equal(result.deviceId, "tpm-device");
    const blob = Buffer.from(result.tpm!.authenticationKey, "base64");
    assert.doesNotThrow(() => parseActivationBlob(blob));
    assert.notDeepEqual(blob, challenge.activationBlob);
    const device = devices.get(HUB_A, "tpm-device")!;
    assert.equal(device.authentication.type, "sas");
    const hubKey =
      device.authentication.type === "sas"
        ? Buffer.from(device.authentication.symmetricKey.primaryKey, "base64")
        : Buffer.alloc(0);
    assert.equal(hubKey.length, 32);
    assert.notDeepEqual(hubKey, challenge.sessionKey);
    assert.equal(result.symmetricKey, undefined);
    assert.equal(result.x509, undefined);
  });
});

describe("DPS registration service: operations", () => {
  afterEach(() => mock.timers.reset());

  async function enrolled(options: Partial<RegistrationServiceOptions> = {}) {
    const context = setup(options);
    const keys = context.store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
    const identity = await skIdentity(context.service, "sk-1", keys.primaryKey);
    return { ...context, identity, keys };
  }

  it("refuses a body that is not a DeviceRegistration object, or names another registration id", async () => {
    const { service, identity } = await enrolled();
    for (const body of [null, "sk-1", [], 7]) {
      assert.throws(
        () => service.register(identity, body),
        refused(400, DPS_ERROR.badRequest, "the request body must be a DeviceRegistration object"),
        JSON.stringify(body),
      );
    }
    for (const registrationId of ["sk-2", 7]) {
      assert.throws(
        () => service.register(identity, { registrationId }),
        refused(
          400,
          DPS_ERROR.invalidRegistrationId,
          "registrationId does not match the authenticated device",
        ),
      );
    }
    assert.equal(service.register(identity, { registrationId: "SK-1" }).status, "assigning");
    assert.equal(service.register(identity, {}).status, "assigning");
  });

  it("answers with an operation id of Azure's form, the result only to the device that started it", async () => {
    const { service, store, identity } = await enrolled();
    const started = service.register(identity, {});
    assert.match(
      started.operationId,
      /^4\.[0-9a-f]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    const otherKeys = store.putIndividualEnrollment(skEnrollment("sk-2")).attestation.symmetricKey!;
    const other = await skIdentity(service, "sk-2", otherKeys.primaryKey);
    const notFound = refused(404, DPS_ERROR.operationNotFound, "operation not found");
    assert.throws(() => service.operationStatus(other, started.operationId), notFound);
    assert.throws(() => service.operationStatus(identity, undefined), notFound);
    assert.throws(() => service.operationStatus(identity, ""), notFound);
    assert.throws(() => service.operationStatus(identity, "4.0000000000000000.unknown"), notFound);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const upper = { ...identity, registrationId: "SK-1" };
    const done = service.operationStatus(upper, started.operationId);
    assert.equal(done.status, "assigned");
    assert.equal(done.operationId, started.operationId);
    assert.equal(done.registrationState?.assignedHub, HUB_A);
  });

  it("answers assigning for as many polls as asked before it gives the result", async () => {
    const { service, identity } = await enrolled({ extraAssigningPolls: 2 });
    const started = service.register(identity, {});
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(service.operationStatus(identity, started.operationId).status, "assigning");
    assert.equal(service.operationStatus(identity, started.operationId).status, "assigning");
    assert.equal(service.operationStatus(identity, started.operationId).status, "assigned");
    assert.equal(service.operationStatus(identity, started.operationId).status, "assigned");
  });

  it("forgets operations older than ten minutes when a new one starts, and keeps younger ones", async () => {
    mock.timers.enable({ apis: ["Date"], now: Date.now() });
    const { service, identity } = await enrolled();
    const old = service.register(identity, {});
    mock.timers.tick(5 * 60 * 1000);
    const young = service.register(identity, {});
    mock.timers.tick(5 * 60 * 1000);
    service.register(identity, {});
    assert.doesNotThrow(
      () => service.operationStatus(identity, old.operationId),
      "exactly ten minutes old is kept",
    );
    mock.timers.tick(1);
    service.register(identity, {});
    assert.throws(
      () => service.operationStatus(identity, old.operationId),
      refused(404, DPS_ERROR.operationNotFound, "operation not found"),
    );
    assert.doesNotThrow(() => service.operationStatus(identity, young.operationId));
  });

  it("keeps at most 10 000 operations, dropping the oldest first", async () => {
    // A disabled enrollment: the operations finish at once, without writing to the hub.
    const { service, store } = setup();
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1", { provisioningStatus: "disabled" }))
      .attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    const first = service.register(identity, {});
    const second = service.register(identity, {});
    for (let i = 0; i < 9_998; i++) service.register(identity, {});
    service.register(identity, {}); // the 10 001st: the first goes
    assert.throws(
      () => service.operationStatus(identity, first.operationId),
      refused(404, DPS_ERROR.operationNotFound, "operation not found"),
    );
    assert.doesNotThrow(() => service.operationStatus(identity, second.operationId));
  });

  it("throttles exactly as many requests as asked, whole ones, never a negative count", () => {
    const { service } = setup();
    assert.equal(service.takeThrottle(), false);
    service.throttleNext(2.7);
    assert.deepEqual(
      [service.takeThrottle(), service.takeThrottle(), service.takeThrottle()],
      [true, true, false],
    );
    service.throttleNext(-3);
    assert.equal(service.takeThrottle(), false);
    service.throttleNext(1);
    assert.equal(service.takeThrottle(), true);
    assert.equal(service.takeThrottle(), false);
  });

  it("knows its own id scope in any case, and tells the device to wait 1 s unless told otherwise", () => {
    const { service } = setup();
    assert.equal(service.isOwnScope(ID_SCOPE.toLowerCase()), true);
    assert.equal(service.isOwnScope("0ne00OTHER1"), false);
    assert.equal(service.idScope, ID_SCOPE);
    assert.equal(service.retryAfterSeconds, 1);
    assert.equal(setup({ retryAfterSeconds: 3 }).service.retryAfterSeconds, 3);
  });
});

describe("DPS registration service: assignment", () => {
  let webhook: Server;
  let webhookUrl: string;
  let answer: (request: unknown) => { status: number; body: unknown };
  const requests: unknown[] = [];

  before(async () => {
    webhook = createServer((req: IncomingMessage, res) => {
      let text = "";
      req.on("data", (chunk: Buffer) => (text += chunk.toString()));
      req.on("end", () => {
        const request = JSON.parse(text) as unknown;
        requests.push(request);
        const { status, body } = answer(request);
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/allocate`;
  });
  after(() => new Promise<void>((resolve) => webhook.close(() => resolve())));

  it("assigns a new device with the enrollment's initial twin, without its metadata, and the device's model id", async () => {
    const { store, service, devices } = setup();
    const keys = store.putIndividualEnrollment(
      skEnrollment("sk-1", {
        deviceId: "device-1",
        initialTwin: {
          tags: { site: "north", $etag: "x", count: 2 },
          properties: { desired: { rate: 5, $version: 4, $metadata: {}, count: "kept" } },
        },
      }),
    ).attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    const result = await provision(service, identity, { payload: { modelId: "dtmi:provisio:gateway;1" } });
    assert.equal(result.status, "assigned");
    assert.equal(result.substatus, "initialAssignment");
    assert.equal(result.registrationId, "sk-1");
    assert.equal(result.deviceId, "device-1");
    assert.equal(result.assignedHub, HUB_A);
    assert.deepEqual(result.symmetricKey, {});
    assert.equal(result.payload, undefined, "no echo unless asked");
    assert.deepEqual(devices.get(HUB_A, "device-1"), {
      hubHostName: HUB_A,
      deviceId: "device-1",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: keys },
      modelId: "dtmi:provisio:gateway;1",
    });
    const twin = devices.twinDocument(HUB_A, "device-1")!;
    assert.deepEqual(twin.tags, { site: "north" });
    assert.equal(twin.properties.desired.rate, 5);
    assert.equal(twin.properties.desired.count, "kept");
    const stored = store.getRegistrationState("sk-1")!;
    assert.equal(stored.status, "assigned");
    assert.equal(stored.assignedHub, HUB_A);
    assert.equal(stored.etag, result.etag);
  });

  it("takes no model id that is not a dtmi string, and seeds no twin without an initial twin", async () => {
    const { store, service, devices } = setup();
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    for (const payload of [{ modelId: "urn:not-a-dtmi" }, { modelId: 7 }, "dtmi:bare"]) {
      await provision(service, identity, { payload });
      assert.equal(devices.get(HUB_A, "sk-1")?.modelId, undefined, JSON.stringify(payload));
    }
    assert.deepEqual(devices.twinDocument(HUB_A, "sk-1")!.tags, {});
  });

  it("echoes the device's payload only when asked", async () => {
    const { store, service } = setup({ echoDevicePayload: true });
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    assert.deepEqual((await provision(service, identity, { payload: { a: 1 } })).payload, { a: 1 });
    assert.equal("payload" in (await provision(service, identity, {})), false);
  });

  it("answers disabled for a disabled enrollment and writes nothing to the hub", async () => {
    const { store, service, devices } = setup();
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1", { provisioningStatus: "disabled" }))
      .attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    const started = service.register(identity, {});
    await new Promise((resolve) => setTimeout(resolve, 20));
    const status = service.operationStatus(identity, started.operationId);
    assert.equal(status.status, "disabled");
    assert.equal(status.registrationState?.status, "disabled");
    assert.equal(status.registrationState?.registrationId, "sk-1");
    assert.equal(devices.get(HUB_A, "sk-1"), undefined);
  });

  it("keeps the first registration time when the device registers again", async () => {
    mock.timers.enable({ apis: ["Date"], now: Date.parse("2030-01-01T00:00:00Z") });
    try {
      const { store, service } = setup();
      const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
      const identity = await skIdentity(service, "sk-1", keys.primaryKey);
      const first = service.register(identity, {});
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(
        service.operationStatus(identity, first.operationId).registrationState?.createdDateTimeUtc,
        "2030-01-01T00:00:00.000Z",
      );
      mock.timers.tick(60_000);
      const again = service.register(identity, {});
      await new Promise((resolve) => setImmediate(resolve));
      const state = service.operationStatus(identity, again.operationId).registrationState!;
      assert.equal(state.createdDateTimeUtc, "2030-01-01T00:00:00.000Z");
      assert.equal(state.lastUpdatedDateTimeUtc, "2030-01-01T00:01:00.000Z");
    } finally {
      mock.timers.reset();
    }
  });

  it("fails with 400004 when no linked hub can take the device, and records the failure", async () => {
    const { store, service } = setup({}, [{ hostName: HUB_A, applyAllocationPolicy: false }]);
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    const result = await provision(service, identity);
    assert.equal(result.status, "failed");
    assert.equal(result.errorCode, DPS_ERROR.badRequest);
    assert.equal(result.errorMessage, "no linked IoT hub is available for this enrollment");
    assert.equal(store.getRegistrationState("sk-1")?.status, "failed");
    assert.equal(store.getRegistrationState("sk-1")?.errorCode, DPS_ERROR.badRequest);
  });

  it("uses the enrollment's policy, else the instance's default, else hashed", async () => {
    const linked = [{ hostName: HUB_A }, { hostName: HUB_B }];
    // Find a registration id that hashed allocation puts on hub B: static then must still pick A.
    const probe = setup({}, linked);
    let onB: string | undefined;
    for (let i = 0; i < 50 && !onB; i++) {
      const id = `dev-${i}`;
      const keys = probe.store.putIndividualEnrollment(skEnrollment(id)).attestation.symmetricKey!;
      if (
        (await provision(probe.service, await skIdentity(probe.service, id, keys.primaryKey))).assignedHub ===
        HUB_B
      )
        onB = id;
    }
    assert.ok(onB, "some id hashes to hub B");
    const byDefault = setup({ defaultAllocationPolicy: "static" }, linked);
    const keys = byDefault.store.putIndividualEnrollment(skEnrollment(onB)).attestation.symmetricKey!;
    assert.equal(
      (await provision(byDefault.service, await skIdentity(byDefault.service, onB, keys.primaryKey)))
        .assignedHub,
      HUB_A,
    );
    const own = setup({ defaultAllocationPolicy: "static" }, linked);
    const ownKeys = own.store.putIndividualEnrollment(skEnrollment(onB, { allocationPolicy: "hashed" }))
      .attestation.symmetricKey!;
    assert.equal(
      (await provision(own.service, await skIdentity(own.service, onB, ownKeys.primaryKey))).assignedHub,
      HUB_B,
    );
  });

  it("registers a group member under its registration id, with the group named in the result and the registration", async () => {
    const { store, service, devices } = setup();
    const group = store.putEnrollmentGroup({
      enrollmentGroupId: "sk-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
      initialTwin: { tags: { fleet: "a" } },
    });
    const identity = await skIdentity(
      service,
      "member-1",
      deriveDeviceKey(group.attestation.symmetricKey!.primaryKey, "member-1"),
    );
    const result = await provision(service, identity);
    assert.equal(result.deviceId, "member-1");
    assert.deepEqual(result.symmetricKey, { enrollmentGroupId: "sk-group" });
    assert.equal(store.getRegistrationGroupId("member-1"), "sk-group");
    assert.deepEqual(devices.twinDocument(HUB_A, "member-1")!.tags, { fleet: "a" });
  });

  it("registers an X.509 device by its thumbprint, a group member as CA-authenticated, each with its certificate info", async () => {
    const { store, service, devices } = setup();
    const issued = x509Device;
    store.putIndividualEnrollment({
      registrationId: "x509-1",
      attestation: { type: "x509", x509: { clientCertificates: { primary: { certificate: issued.cert } } } },
    });
    const leaf = new X509Certificate(issued.cert);
    const individual = await provision(service, service.authenticateX509("x509-1", [leaf]));
    assert.deepEqual(individual.x509, {
      certificateInfo: {
        subjectName: "CN=x509-1",
        sha1Thumbprint: issued.thumbprint,
        sha256Thumbprint: issued.thumbprintSha256,
        issuerName: "CN=Provisio Test Root CA",
        notBeforeUtc: new Date(leaf.validFrom).toISOString(),
        notAfterUtc: new Date(leaf.validTo).toISOString(),
        serialNumber: leaf.serialNumber,
        version: 3,
      },
    });
    assert.deepEqual(devices.get(HUB_A, "x509-1")?.authentication, {
      type: "selfSigned",
      x509Thumbprint: { primaryThumbprint: issued.thumbprint },
    });
    store.putEnrollmentGroup({
      enrollmentGroupId: "x509-group",
      attestation: { type: "x509", x509: { signingCertificates: { primary: { certificate: pki.caCert } } } },
    });
    const member = new X509Certificate(groupMember.cert);
    const grouped = await provision(
      service,
      service.authenticateX509("member-1", [member, new X509Certificate(pki.caCert)]),
    );
    assert.equal(grouped.x509?.enrollmentGroupId, "x509-group");
    assert.equal(grouped.x509?.certificateInfo?.subjectName, "CN=member-1");
    assert.deepEqual(devices.get(HUB_A, "member-1")?.authentication, { type: "certificateAuthority" });
  });

  it("keeps a device an operator disabled in the hub disabled when it registers again", async () => {
    const { store, service, devices } = setup();
    const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
    const identity = await skIdentity(service, "sk-1", keys.primaryKey);
    await provision(service, identity);
    devices.setStatus(HUB_A, "sk-1", "disabled");
    await provision(service, identity);
    assert.equal(devices.get(HUB_A, "sk-1")?.status, "disabled");
  });

  describe("reprovisioning", () => {
    /** A device first assigned to hub A, then its enrollment pointed at hub B with `policy`. */
    async function moved(
      policy: { updateHubAssignment: boolean; migrateDeviceData: boolean } | undefined,
      deviceIdAfter?: string,
    ) {
      const context = setup({}, [{ hostName: HUB_A }, { hostName: HUB_B }]);
      const { store, service, devices } = context;
      const enrollment = store.putIndividualEnrollment(
        skEnrollment("sk-1", {
          iotHubs: [HUB_A],
          initialTwin: { tags: { seeded: true }, properties: { desired: { rate: 1 } } },
        }),
      );
      const keys = enrollment.attestation.symmetricKey!;
      const identity = await skIdentity(service, "sk-1", keys.primaryKey);
      await provision(service, identity);
      devices.updateTwin(HUB_A, "sk-1", {
        tags: { changed: "in the hub" },
        properties: { desired: { rate: 9 } },
      });
      store.putIndividualEnrollment({
        ...enrollment,
        iotHubs: [HUB_B],
        ...(deviceIdAfter ? { deviceId: deviceIdAfter } : {}),
        ...(policy ? { reprovisionPolicy: policy } : {}),
      });
      const again = await skIdentity(service, "sk-1", keys.primaryKey);
      return { ...context, result: await provision(service, again) };
    }

    it("migrates the twin to the new hub and removes the old device, by default", async () => {
      const { result, devices, deleted } = await moved(undefined);
      assert.equal(result.assignedHub, HUB_B);
      assert.equal(result.substatus, "deviceDataMigrated");
      const twin = devices.twinDocument(HUB_B, "sk-1")!;
      assert.deepEqual(twin.tags, { changed: "in the hub", seeded: true });
      assert.equal(twin.properties.desired.rate, 9);
      assert.deepEqual(deleted, [`${HUB_A}/sk-1`]);
      assert.equal(devices.get(HUB_A, "sk-1"), undefined);
    });

    it("moves a device whose id changed within the same hub, and keeps one that stays as it is", async () => {
      const context = setup();
      const enrollment = context.store.putIndividualEnrollment(skEnrollment("sk-1", { deviceId: "old-id" }));
      const keys = enrollment.attestation.symmetricKey!;
      const identity = await skIdentity(context.service, "sk-1", keys.primaryKey);
      await provision(context.service, identity);
      context.devices.updateTwin(HUB_A, "old-id", { tags: { kept: 1 } });
      const version = context.devices.twinDocument(HUB_A, "old-id")!.version;
      const same = await provision(context.service, identity);
      assert.equal(
        context.devices.twinDocument(HUB_A, "old-id")!.version,
        version,
        "the twin is not rewritten",
      );
      assert.equal(same.substatus, "deviceDataMigrated");
      assert.deepEqual(context.deleted, [], "the same hub and id: nothing moves");
      assert.deepEqual(context.devices.twinDocument(HUB_A, "old-id")!.tags, { kept: 1 });
      context.store.putIndividualEnrollment({ ...enrollment, deviceId: "new-id" });
      await provision(context.service, await skIdentity(context.service, "sk-1", keys.primaryKey));
      assert.deepEqual(context.devices.twinDocument(HUB_A, "new-id")!.tags, { kept: 1 });
      assert.deepEqual(context.deleted, [`${HUB_A}/old-id`]);
    });

    it("moves a device whose id changed only in case: hub device ids are case-sensitive", async () => {
      const context = setup();
      const enrollment = context.store.putIndividualEnrollment(skEnrollment("sk-1", { deviceId: "Line-1" }));
      const keys = enrollment.attestation.symmetricKey!;
      await provision(context.service, await skIdentity(context.service, "sk-1", keys.primaryKey));
      context.devices.updateTwin(HUB_A, "Line-1", { tags: { kept: 1 } });
      context.store.putIndividualEnrollment({ ...enrollment, deviceId: "line-1" });
      const result = await provision(
        context.service,
        await skIdentity(context.service, "sk-1", keys.primaryKey),
      );
      assert.equal(result.deviceId, "line-1");
      assert.deepEqual(context.devices.twinDocument(HUB_A, "line-1")!.tags, { kept: 1 });
      assert.deepEqual(context.deleted, [`${HUB_A}/Line-1`]);
      assert.equal(context.devices.get(HUB_A, "Line-1"), undefined);
    });

    it("never re-provisions when told so: the device stays on its hub, untouched", async () => {
      const { result, devices, deleted } = await moved({
        updateHubAssignment: false,
        migrateDeviceData: false,
      });
      assert.equal(result.assignedHub, HUB_A);
      assert.equal(result.substatus, "initialAssignment");
      assert.deepEqual(devices.twinDocument(HUB_A, "sk-1")!.tags, { seeded: true, changed: "in the hub" });
      assert.deepEqual(deleted, []);
      assert.equal(devices.get(HUB_B, "sk-1"), undefined);
    });

    it("resets the device to the initial twin on the new hub when data is not migrated", async () => {
      const { result, devices, deleted } = await moved({
        updateHubAssignment: true,
        migrateDeviceData: false,
      });
      assert.equal(result.assignedHub, HUB_B);
      assert.equal(result.substatus, "deviceDataReset");
      assert.deepEqual(devices.twinDocument(HUB_B, "sk-1")!.tags, { seeded: true });
      assert.equal(devices.twinDocument(HUB_B, "sk-1")!.properties.desired.rate, 1);
      assert.deepEqual(deleted, [`${HUB_A}/sk-1`]);
    });

    it("resets to an empty twin when there is no initial twin", async () => {
      const context = setup();
      const enrollment = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", { reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: false } }),
      );
      const identity = await skIdentity(
        context.service,
        "sk-1",
        enrollment.attestation.symmetricKey!.primaryKey,
      );
      await provision(context.service, identity);
      context.devices.updateTwin(HUB_A, "sk-1", {
        tags: { stale: true },
        properties: { desired: { stale: true } },
      });
      const result = await provision(context.service, identity);
      assert.equal(result.substatus, "deviceDataReset");
      assert.deepEqual(context.devices.twinDocument(HUB_A, "sk-1")!.tags, {});
      assert.equal(context.devices.twinDocument(HUB_A, "sk-1")!.properties.desired.stale, undefined);
    });

    it("seeds the initial twin when the old device's twin is gone, and creates a deleted device again", async () => {
      const context = setup({}, [{ hostName: HUB_A }, { hostName: HUB_B }]);
      const enrollment = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", { iotHubs: [HUB_A], initialTwin: { tags: { seeded: true } } }),
      );
      const identity = await skIdentity(
        context.service,
        "sk-1",
        enrollment.attestation.symmetricKey!.primaryKey,
      );
      await provision(context.service, identity);
      context.devices.delete(HUB_A, "sk-1");
      const again = await provision(context.service, identity);
      assert.equal(again.assignedHub, HUB_A);
      assert.deepEqual(
        context.devices.twinDocument(HUB_A, "sk-1")!.tags,
        { seeded: true },
        "created again, like a new device",
      );
      context.devices.delete(HUB_A, "sk-1");
      context.store.putIndividualEnrollment({ ...enrollment, iotHubs: [HUB_B] });
      await provision(
        context.service,
        await skIdentity(context.service, "sk-1", enrollment.attestation.symmetricKey!.primaryKey),
      );
      assert.deepEqual(
        context.devices.twinDocument(HUB_B, "sk-1")!.tags,
        { seeded: true },
        "no old twin to migrate",
      );
    });

    it("never re-provisioning a device whose id changed: the new id on the same hub, the old one left alone", async () => {
      const context = setup();
      const enrollment = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", {
          deviceId: "old-id",
          reprovisionPolicy: { updateHubAssignment: false, migrateDeviceData: false },
          initialTwin: { tags: { seeded: true } },
        }),
      );
      const keys = enrollment.attestation.symmetricKey!;
      await provision(context.service, await skIdentity(context.service, "sk-1", keys.primaryKey));
      context.store.putIndividualEnrollment({ ...enrollment, deviceId: "new-id" });
      const result = await provision(
        context.service,
        await skIdentity(context.service, "sk-1", keys.primaryKey),
      );
      assert.equal(result.assignedHub, HUB_A);
      assert.equal(result.deviceId, "new-id");
      assert.ok(context.devices.get(HUB_A, "old-id"), "the old device stays");
      assert.deepEqual(context.deleted, []);
      assert.deepEqual(context.devices.twinDocument(HUB_A, "new-id")!.tags, { seeded: true });
    });

    it("takes the same hub spelt in another case after a restart for the same hub: nothing moves", async () => {
      const store = new EnrollmentStore();
      const hub = hubs([{ hostName: "Hub-A.Azure-Devices.net" }]);
      const before = new RegistrationService({ idScope: ID_SCOPE, store, hubs: hub.dpsHubs });
      const keys = store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
      await provision(before, await skIdentity(before, "sk-1", keys.primaryKey));
      hub.devices.updateTwin("Hub-A.Azure-Devices.net", "sk-1", { tags: { kept: true } });
      const after = new RegistrationService({
        idScope: ID_SCOPE,
        store,
        hubs: { ...hub.dpsHubs, linkedHubs: [{ hostName: HUB_A }] },
      });
      const result = await provision(after, await skIdentity(after, "sk-1", keys.primaryKey));
      assert.equal(result.assignedHub, HUB_A);
      assert.deepEqual(hub.deleted, []);
      assert.deepEqual(hub.devices.twinDocument(HUB_A, "sk-1")?.tags, { kept: true });
    });

    it("seeds the initial twin on the new hub when no twin service is linked to migrate from", async () => {
      const store = new EnrollmentStore();
      const hub = hubs([{ hostName: HUB_A }, { hostName: HUB_B }]);
      const { service: _twins, ...withoutTwins } = hub.dpsHubs;
      const service = new RegistrationService({ idScope: ID_SCOPE, store, hubs: withoutTwins });
      const enrollment = store.putIndividualEnrollment(
        skEnrollment("sk-1", { iotHubs: [HUB_A], initialTwin: { tags: { seeded: true } } }),
      );
      const keys = enrollment.attestation.symmetricKey!;
      await provision(service, await skIdentity(service, "sk-1", keys.primaryKey));
      hub.devices.updateTwin(HUB_A, "sk-1", { tags: { changed: true } });
      store.putIndividualEnrollment({ ...enrollment, iotHubs: [HUB_B] });
      const result = await provision(service, await skIdentity(service, "sk-1", keys.primaryKey));
      assert.equal(result.substatus, "deviceDataMigrated");
      assert.deepEqual(hub.devices.twinDocument(HUB_B, "sk-1")?.tags, { seeded: true });
    });

    it("fails with an internal error, and no hub write, when the hub refuses the device's initial twin", async () => {
      const deep: Record<string, unknown> = {};
      let cursor = deep;
      for (let i = 0; i < 12; i++) cursor = cursor.level = {};
      const context = setup();
      const keys = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", { initialTwin: { tags: deep } }),
      ).attestation.symmetricKey!;
      const result = await provision(
        context.service,
        await skIdentity(context.service, "sk-1", keys.primaryKey),
      );
      assert.equal(result.status, "failed");
      assert.equal(result.registrationId, "sk-1");
      assert.equal(result.errorCode, DPS_ERROR.internal);
      assert.equal(result.errorMessage, "internal error while assigning the device");
      assert.match(result.lastUpdatedDateTimeUtc ?? "", /^\d{4}-\d\d-\d\dT/);
      assert.equal(context.devices.get(HUB_A, "sk-1"), undefined);
    });

    it("seeds the initial twin on first assignment even over a device the hub already has", async () => {
      const context = setup();
      context.devices.upsert(
        {
          hubHostName: HUB_A,
          deviceId: "sk-1",
          status: "enabled",
          authentication: { type: "sas", symmetricKey: { primaryKey: key() } },
        },
        { tags: { before: true } },
      );
      const keys = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", { initialTwin: { tags: { seeded: true } } }),
      ).attestation.symmetricKey!;
      await provision(context.service, await skIdentity(context.service, "sk-1", keys.primaryKey));
      assert.deepEqual(context.devices.twinDocument(HUB_A, "sk-1")!.tags, { seeded: true });
    });

    it("records a group member's failed registration under its group, an individual one under none", async () => {
      const context = setup({}, [{ hostName: HUB_A, applyAllocationPolicy: false }]);
      const group = context.store.putEnrollmentGroup({
        enrollmentGroupId: "sk-group",
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key(), secondaryKey: key() } },
      });
      const member = await skIdentity(
        context.service,
        "member-1",
        deriveDeviceKey(group.attestation.symmetricKey!.primaryKey, "member-1"),
      );
      assert.equal((await provision(context.service, member)).status, "failed");
      assert.equal(context.store.getRegistrationGroupId("member-1"), "sk-group");
      const keys = context.store.putIndividualEnrollment(skEnrollment("sk-1")).attestation.symmetricKey!;
      assert.equal(
        (await provision(context.service, await skIdentity(context.service, "sk-1", keys.primaryKey))).status,
        "failed",
      );
      assert.equal(context.store.getRegistrationGroupId("sk-1"), undefined);
    });

    it("leaves a working assignment in place when a re-registration fails", async () => {
      const context = setup({}, [{ hostName: HUB_A }, { hostName: HUB_B, applyAllocationPolicy: false }]);
      const enrollment = context.store.putIndividualEnrollment(skEnrollment("sk-1"));
      const identity = await skIdentity(
        context.service,
        "sk-1",
        enrollment.attestation.symmetricKey!.primaryKey,
      );
      const first = await provision(context.service, identity);
      context.store.putIndividualEnrollment({ ...enrollment, iotHubs: ["hub-z.azure-devices.net"] });
      const failed = await provision(
        context.service,
        await skIdentity(context.service, "sk-1", enrollment.attestation.symmetricKey!.primaryKey),
      );
      assert.equal(failed.status, "failed");
      assert.equal(failed.etag, first.etag);
      assert.equal(context.store.getRegistrationState("sk-1")?.status, "assigned");
      assert.equal(context.store.getRegistrationState("sk-1")?.assignedHub, HUB_A);
    });
  });

  describe("custom allocation", () => {
    const linked = [{ hostName: HUB_A }, { hostName: HUB_B }];

    async function customEnrolled(
      extra: Partial<IndividualEnrollment> = {},
      options: Partial<RegistrationServiceOptions> = {},
    ) {
      const context = setup(options, linked);
      const keys = context.store.putIndividualEnrollment(
        skEnrollment("sk-1", {
          allocationPolicy: "custom",
          customAllocationDefinition: { webhookUrl, apiVersion: "2021-10-01" },
          ...extra,
        }),
      ).attestation.symmetricKey!;
      return { ...context, identity: await skIdentity(context.service, "sk-1", keys.primaryKey) };
    }

    it("asks the webhook, with the enrollment (no keys), the device and the candidate hubs, and follows its answer", async () => {
      answer = () => ({
        status: 200,
        body: {
          iotHubHostName: HUB_B.toUpperCase(),
          initialTwin: { tags: { by: "webhook" } },
          payload: { hello: 1 },
        },
      });
      requests.length = 0;
      const { service, identity, devices, store } = await customEnrolled({
        initialTwin: { tags: { by: "enrollment" } },
      });
      const result = await provision(service, identity, { payload: { from: "device" } });
      assert.equal(result.assignedHub, HUB_B);
      assert.deepEqual(result.payload, { hello: 1 });
      assert.deepEqual(store.getRegistrationState("sk-1")?.payload, { hello: 1 });
      assert.deepEqual(devices.twinDocument(HUB_B, "sk-1")!.tags, { by: "webhook" });
      const request = requests[0] as {
        individualEnrollment: IndividualEnrollment;
        enrollmentGroup?: unknown;
        deviceRuntimeContext: Record<string, unknown>;
        linkedHubs: string[];
      };
      assert.equal(request.individualEnrollment.registrationId, "sk-1");
      assert.equal(request.individualEnrollment.attestation.type, "symmetricKey");
      assert.equal(
        request.individualEnrollment.attestation.symmetricKey,
        undefined,
        "no keys to the webhook",
      );
      assert.equal(request.enrollmentGroup, undefined);
      assert.deepEqual(request.deviceRuntimeContext, {
        registrationId: "sk-1",
        symmetricKey: {},
        payload: { from: "device" },
      });
      assert.deepEqual(request.linkedHubs, [HUB_A, HUB_B]);

      answer = () => ({ status: 200, body: { iotHubHostName: HUB_A } });
      const again = await provision(service, identity);
      assert.equal(again.assignedHub, HUB_A);
      assert.equal("payload" in again, false);
      assert.deepEqual((requests[1] as { deviceRuntimeContext: unknown }).deviceRuntimeContext, {
        registrationId: "sk-1",
        currentIotHubHostName: HUB_B,
        currentDeviceId: "sk-1",
        symmetricKey: {},
      });
      assert.deepEqual(devices.twinDocument(HUB_A, "sk-1")!.tags, { by: "webhook" }, "migrated");
    });

    it("seeds the enrollment's initial twin when the webhook gives none", async () => {
      answer = () => ({ status: 200, body: { iotHubHostName: HUB_A } });
      const { service, identity, devices } = await customEnrolled({
        initialTwin: { tags: { by: "enrollment" } },
      });
      await provision(service, identity);
      assert.deepEqual(devices.twinDocument(HUB_A, "sk-1")!.tags, { by: "enrollment" });
    });

    it("gives the device the webhook's payload, not its own, even when asked to echo", async () => {
      answer = () => ({ status: 200, body: { iotHubHostName: HUB_A, payload: { from: "webhook" } } });
      const { service, identity } = await customEnrolled({}, { echoDevicePayload: true });
      const result = await provision(service, identity, { payload: { from: "device" } });
      assert.deepEqual(result.payload, { from: "webhook" });
    });

    it("tells the webhook about an X.509 group member and its certificate, and a TPM device", async () => {
      answer = () => ({ status: 200, body: { iotHubHostName: HUB_A } });
      requests.length = 0;
      const context = setup({}, linked);
      context.store.putEnrollmentGroup({
        enrollmentGroupId: "x509-group",
        allocationPolicy: "custom",
        customAllocationDefinition: { webhookUrl, apiVersion: "2021-10-01" },
        attestation: {
          type: "x509",
          x509: { signingCertificates: { primary: { certificate: pki.caCert } } },
        },
      });
      const leaf = new X509Certificate(groupMember.cert);
      await provision(
        context.service,
        context.service.authenticateX509("member-1", [leaf, new X509Certificate(pki.caCert)]),
      );
      const x509Request = requests[0] as {
        enrollmentGroup?: EnrollmentGroup;
        individualEnrollment?: unknown;
        deviceRuntimeContext: Record<string, unknown>;
      };
      assert.equal(x509Request.enrollmentGroup?.enrollmentGroupId, "x509-group");
      assert.equal(x509Request.individualEnrollment, undefined);
      assert.deepEqual(Object.keys(x509Request.deviceRuntimeContext).sort(), ["registrationId", "x509"]);
      assert.equal(
        (x509Request.deviceRuntimeContext.x509 as { certificateInfo: { subjectName: string } })
          .certificateInfo.subjectName,
        "CN=member-1",
      );

      context.store.putIndividualEnrollment({
        registrationId: "tpm-1",
        allocationPolicy: "custom",
        customAllocationDefinition: { webhookUrl, apiVersion: "2021-10-01" },
        attestation: { type: "tpm", tpm: { endorsementKey: EK.toString("base64") } },
      });
      const challenge = context.service.issueTpmChallenge("tpm-1", EK, SRK);
      const tpm = context.service.authenticateTpm("tpm-1", await token("tpm-1", challenge.sessionKey), {
        sessionKey: challenge.sessionKey,
        endorsementKey: EK,
        storageRootKey: SRK,
      });
      await provision(context.service, tpm);
      assert.deepEqual((requests[1] as { deviceRuntimeContext: unknown }).deviceRuntimeContext, {
        registrationId: "tpm-1",
        tpm: {},
      });
      assert.equal(
        (requests[1] as { individualEnrollment: IndividualEnrollment }).individualEnrollment.attestation.tpm
          ?.endorsementKey,
        EK.toString("base64"),
      );
    });

    it("fails with 400207 for a hub that is not linked, a refusal, or a webhook it cannot reach", async () => {
      answer = () => ({ status: 200, body: { iotHubHostName: "hub-z.azure-devices.net" } });
      const unlinked = await customEnrolled();
      const result = await provision(unlinked.service, unlinked.identity);
      assert.equal(result.status, "failed");
      assert.equal(result.errorCode, DPS_ERROR.customAllocationFailed);
      assert.equal(result.errorMessage, "Custom allocation returned an IoT hub that is not linked");

      answer = () => ({ status: 500, body: {} });
      const refusedByWebhook = await customEnrolled();
      const failed = await provision(refusedByWebhook.service, refusedByWebhook.identity);
      assert.equal(failed.errorCode, DPS_ERROR.customAllocationFailed);
      assert.equal(failed.errorMessage, "Custom allocation failed with status code: 500");

      const unreachable = await customEnrolled({
        customAllocationDefinition: { webhookUrl: "http://127.0.0.1:1/allocate", apiVersion: "2021-10-01" },
      });
      const lost = await provision(unreachable.service, unreachable.identity);
      assert.equal(lost.errorMessage, "Custom allocation failed: the webhook could not be reached");
    });

    /** Closes the service while the webhook holds its answer (`hub`), then lets the webhook answer. */
    async function closedWhileAsking(hub: string) {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let arrived!: () => void;
      const asked = new Promise<void>((resolve) => (arrived = resolve));
      const slow = createServer((req, res) => {
        req.resume();
        arrived();
        void held.then(() =>
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ iotHubHostName: hub })),
        );
      });
      await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
      try {
        const context = await customEnrolled({
          customAllocationDefinition: {
            webhookUrl: `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`,
            apiVersion: "2021-10-01",
          },
        });
        const { service, identity } = context;
        const started = service.register(identity, {});
        await asked;
        service.close();
        release();
        let status = service.operationStatus(identity, started.operationId);
        for (let i = 0; i < 200 && status.status === "assigning"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          status = service.operationStatus(identity, started.operationId);
        }
        return { ...context, status };
      } finally {
        release();
        slow.closeAllConnections();
        await new Promise((resolve) => slow.close(resolve));
      }
    }

    it("writes nothing once closed while the webhook was answering, and reports the stop", async () => {
      // A linked hub (the assignment stops before the hub), and one that is not (the failure is not recorded).
      for (const hub of [HUB_A, "hub-z.azure-devices.net"]) {
        const { status, devices, store } = await closedWhileAsking(hub);
        assert.equal(status.status, "failed", hub);
        assert.equal(status.registrationState?.registrationId, "sk-1");
        assert.equal(status.registrationState?.errorCode, DPS_ERROR.internal);
        assert.equal(status.registrationState?.errorMessage, "the DPS emulator is stopping");
        assert.equal(devices.get(HUB_A, "sk-1"), undefined);
        assert.equal(store.getRegistrationState("sk-1"), undefined, hub);
      }
    });
  });
});
