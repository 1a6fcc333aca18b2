// X.509 provisioning through the emulator with the unmodified SDK over AMQP (no SASL), HTTPS and MQTT:
// individual enrollments (enrolled certificate) and groups (chain to the signing CA), and refusals.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  isRefusal,
  register,
  sdkEndpoint,
  startTestDps,
  TRANSPORTS,
  x509Device,
  type TestDps,
} from "./dps-fixtures.js";
import { createTestPki } from "../support/test-certs.js";

const HUB = "hub-x509.emulator.local";

describe("DPS emulator, X.509 attestation", () => {
  let env: TestDps;

  before(async () => {
    env = await startTestDps({ linkedHubs: [{ hostName: HUB }] });
    env.store.putEnrollmentGroup({
      enrollmentGroupId: "x509-fleet",
      attestation: {
        type: "x509",
        x509: { signingCertificates: { primary: { certificate: env.pki.caCert } } },
      },
    });
  });
  after(async () => {
    await env.dispose();
  });

  it("accepts an individual enrollment given only the certificate's thumbprint (emulator convenience)", async () => {
    const registrationId = "x509-by-thumbprint";
    const device = env.pki.issueClientCert(registrationId, { selfSigned: true });
    const stored = env.store.putIndividualEnrollment({
      registrationId,
      attestation: {
        type: "x509",
        x509: { clientCertificates: { primary: { info: { sha1Thumbprint: device.thumbprint } } } },
      },
    });
    assert.equal(stored.attestation.x509?.clientCertificates?.primary?.certificate, undefined);
    const result = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "https"),
      x509Device(registrationId, device, "https", env.pki.caCert),
    );
    assert.equal(result.status, "assigned");
  });

  for (const transport of TRANSPORTS) {
    it(`provisions an individual self-signed enrollment over ${transport} with the thumbprint in the hub`, async () => {
      const registrationId = `x509-ind-${transport}`;
      const device = env.pki.issueClientCert(registrationId, { selfSigned: true });
      env.store.putIndividualEnrollment({
        registrationId,
        attestation: {
          type: "x509",
          x509: { clientCertificates: { primary: { certificate: device.cert } } },
        },
      });
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        x509Device(registrationId, device, transport, env.pki.caCert),
      );
      assert.equal(result.status, "assigned");
      assert.equal(result.assignedHub, HUB);
      assert.equal(
        (result.x509 as { certificateInfo: { sha1Thumbprint: string } }).certificateInfo.sha1Thumbprint,
        device.thumbprint,
      );
      assert.deepEqual(env.hub.getDevice(HUB, registrationId)?.authentication, {
        type: "selfSigned",
        x509Thumbprint: { primaryThumbprint: device.thumbprint },
      });
    });

    it(`provisions a CA-signed device through the group over ${transport}`, async () => {
      const registrationId = `x509-grp-${transport}`;
      const device = env.pki.issueClientCert(registrationId);
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        x509Device(registrationId, device, transport, env.pki.caCert),
      );
      assert.equal(result.status, "assigned");
      assert.equal((result.x509 as { enrollmentGroupId: string }).enrollmentGroupId, "x509-fleet");
      assert.deepEqual(env.hub.getDevice(HUB, registrationId)?.authentication, {
        type: "certificateAuthority",
      });
    });

    it(`refuses a certificate whose CN is not the registration id, and an unenrolled self-signed one, over ${transport}`, async () => {
      const endpoint = () => sdkEndpoint(env.dps, env.pki.caCert, transport);
      const other = env.pki.issueClientCert(`someone-else-${transport}`);
      await assert.rejects(
        register(endpoint(), x509Device(`x509-cn-${transport}`, other, transport, env.pki.caCert)),
        isRefusal,
      );
      const stray = env.pki.issueClientCert(`stray-${transport}`, { selfSigned: true });
      await assert.rejects(
        register(endpoint(), x509Device(`stray-${transport}`, stray, transport, env.pki.caCert)),
        isRefusal,
      );
      assert.equal(env.hub.getDevice(HUB, `stray-${transport}`), undefined);
      const good = env.pki.issueClientCert(`x509-after-${transport}`);
      const result = await register(
        endpoint(),
        x509Device(`x509-after-${transport}`, good, transport, env.pki.caCert),
      );
      assert.equal(result.status, "assigned");
    });
  }

  it("refuses a leaf signed by another CA with the same name as the enrolled one, on every transport", async () => {
    // Same subject as the enrolled CA, so the leaf's issuer name matches: only its signature does not.
    const rogue = createTestPki();
    for (const transport of TRANSPORTS) {
      const registrationId = `x509-rogue-${transport}`;
      const device = rogue.issueClientCert(registrationId);
      await assert.rejects(
        register(
          sdkEndpoint(env.dps, env.pki.caCert, transport),
          x509Device(registrationId, device, transport, env.pki.caCert),
        ),
        (error: Error) => {
          isRefusal(error);
          // The SDK hands on the refusal as each transport carries it: the AMQP error condition and
          // description, the HTTPS 401 body, MQTT's CONNACK "not authorized".
          const named = {
            amqp: /amqp:unauthorized-access[\s\S]*does not chain to an enrolled certificate/,
            https: /401002[\s\S]*does not chain to an enrolled certificate/,
            mqtt: /Not authorized/,
          }[transport];
          assert.match(inspect(error, { depth: 4 }), named);
          return true;
        },
        transport,
      );
      assert.equal(env.hub.getDevice(HUB, registrationId), undefined);
    }
  });
});
