// The fixed TPM properties turned into manufacturer / vendor / firmware text (pure logic).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TPM_PT_FIXED } from "../../src/tpm/constants.js";
import { propertyText, tpmInfoOf } from "../../src/tpm/tpm-info.js";

const word = (text: string): number => Buffer.from(text.padEnd(4, "\0"), "latin1").readUInt32BE(0);

describe("TPM info from fixed properties", () => {
  it("reads vendor IDs without their NUL or space padding", () => {
    assert.equal(propertyText(word("IFX")), "IFX");
    assert.equal(propertyText(word("IBM ")), "IBM");
    assert.equal(propertyText(word("2.0")), "2.0");
  });

  it("formats a vendor's firmware words as major.minor.build.revision", () => {
    const info = tpmInfoOf(
      new Map([
        [TPM_PT_FIXED.MANUFACTURER, word("IFX")],
        [TPM_PT_FIXED.VENDOR_STRING_1, word("SLB9")],
        [TPM_PT_FIXED.VENDOR_STRING_2, word("670")],
        [TPM_PT_FIXED.FIRMWARE_VERSION_1, 0x00070055],
        [TPM_PT_FIXED.FIRMWARE_VERSION_2, 0x11cb0000],
        [TPM_PT_FIXED.REVISION, 138],
      ]),
    );
    assert.equal(info.manufacturer, "IFX");
    assert.equal(info.vendorString, "SLB9670");
    assert.equal(info.firmwareVersion, "7.85.4555.0");
    assert.deepEqual(info.firmwareVersionRaw, { version1: "0x00070055", version2: "0x11cb0000" });
    assert.equal(info.specRevision, "1.38");
  });

  it("leaves out what the TPM did not report", () => {
    assert.deepEqual(tpmInfoOf(new Map()), {});
    const onlyFirst = tpmInfoOf(new Map([[TPM_PT_FIXED.FIRMWARE_VERSION_1, 0x00010002]]));
    assert.equal(onlyFirst.firmwareVersion, "1.2");
    assert.deepEqual(onlyFirst.firmwareVersionRaw, { version1: "0x00010002" });
  });

  it("keeps spaces inside a word and drops only trailing padding and unprintable bytes", () => {
    assert.equal(propertyText(word("A B")), "A B");
    assert.equal(propertyText(word("AB  ")), "AB");
    assert.equal(propertyText(0x41014243), "ABC"); // "A", a control byte, "BC"
  });

  it("pads each vendor word to four characters and skips a word that was not reported", () => {
    const info = tpmInfoOf(
      new Map([
        [TPM_PT_FIXED.VENDOR_STRING_1, word("SW")],
        [TPM_PT_FIXED.VENDOR_STRING_2, word("TPM")],
        [TPM_PT_FIXED.VENDOR_STRING_4, word("X")],
      ]),
    );
    assert.equal(info.vendorString, "SW  TPM X");
  });

  it("reports the specification family and date, the date only when both parts are known", () => {
    const info = tpmInfoOf(
      new Map([
        [TPM_PT_FIXED.FAMILY_INDICATOR, word("2.0")],
        [TPM_PT_FIXED.YEAR, 2019],
        [TPM_PT_FIXED.DAY_OF_YEAR, 137],
      ]),
    );
    assert.equal(info.specFamily, "2.0");
    assert.deepEqual(info.specDate, { year: 2019, dayOfYear: 137 });
    assert.equal("specDate" in tpmInfoOf(new Map([[TPM_PT_FIXED.YEAR, 2019]])), false);
    assert.equal("specDate" in tpmInfoOf(new Map([[TPM_PT_FIXED.DAY_OF_YEAR, 137]])), false);
  });
});
