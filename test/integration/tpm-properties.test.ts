// TPM manufacturer and firmware (TPM2_GetCapability, fixed properties) read from a real swtpm by our client,
// checked against the same properties read through tss.js, the TPM library of the Azure SDK's TPM client.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TPM_PT_FIXED } from "../../src/tpm/constants.js";
import { TpmSecurityClient, tpmInfoOf } from "../../src/tpm/index.js";
import { sdkTpmOracle, tssCapabilities } from "../support/sdk-tpm-oracle.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

interface TaggedProperty {
  property: number;
  value: number;
}

/** The fixed properties as tss.js reads them (its own command marshalling and parsing). */
async function propertiesThroughTss(tpm: TestTpm): Promise<Map<number, number>> {
  const oracle = sdkTpmOracle(tpm.connection);
  try {
    await oracle.connect();
    const response = await new Promise<{ capabilityData: unknown }>((resolve, reject) =>
      oracle.tpm.GetCapability(
        tssCapabilities().TPM_PROPERTIES ?? 6,
        TPM_PT_FIXED.FAMILY_INDICATOR,
        13,
        (error, res) => (error || !res ? reject(error ?? new Error("no response")) : resolve(res)),
      ),
    );
    const list = response.capabilityData as { tpmProperty: TaggedProperty[] };
    return new Map(list.tpmProperty.map((p) => [Number(p.property), p.value >>> 0]));
  } finally {
    oracle.close();
  }
}

describe("TPM manufacturer and firmware (swtpm)", () => {
  let tpm: TestTpm;

  before(async () => {
    tpm = await startTestTpm();
  });

  after(async () => {
    await tpm?.dispose();
  });

  it("reports what the TPM reports, as tss.js reads it", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    let info;
    try {
      info = await client.getTpmInfo();
    } finally {
      await client.close();
    }
    const expected = tpmInfoOf(await propertiesThroughTss(tpm));
    assert.deepEqual(info, expected);
    // swtpm (libtpms) identifies itself with IBM's vendor ID and implements the 2.0 family
    assert.equal(info.manufacturer, "IBM");
    assert.equal(info.specFamily, "2.0");
    assert.match(info.firmwareVersion ?? "", /^\d+\.\d+\.\d+\.\d+$/);
    assert.match(info.firmwareVersionRaw?.version1 ?? "", /^0x[0-9a-f]{8}$/);
  });

  it("reading the properties leaves the TPM usable (the EK reads the same before and after)", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    try {
      const before = await client.getEndorsementKey();
      await client.getTpmInfo();
      assert.deepEqual(await client.getEndorsementKey(), before);
    } finally {
      await client.close();
    }
  });
});
