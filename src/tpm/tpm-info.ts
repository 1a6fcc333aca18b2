// Who made a TPM and which firmware it runs, from its fixed properties (TPM2_GetCapability, PT_FIXED group,
// TCG TPM 2.0 Library Part 2 §6.13). A station records these next to the endorsement key of each board.
import { TPM_PT_FIXED } from "./constants.js";

export interface TpmInfo {
  /** The vendor's four-character ID (TCG vendor registry), e.g. "IFX", "STM", "NTC", "IBM" (swtpm). */
  manufacturer?: string;
  /** The vendor's free-form description (up to 16 characters). */
  vendorString?: string;
  /** "major.minor.build.revision" from FIRMWARE_VERSION_1 and _2 (16 bits each), as Windows shows it. */
  firmwareVersion?: string;
  /** The raw 32-bit firmware words in hex, since vendors use them differently. */
  firmwareVersionRaw?: { version1: string; version2?: string };
  /** The library specification the TPM implements, e.g. "2.0" at level 0, revision "1.59". */
  specFamily?: string;
  specRevision?: string;
  /** Year and day of year of the specification revision. */
  specDate?: { year: number; dayOfYear: number };
}

/** Four big-endian bytes as ASCII, without the NUL and space padding vendors use. */
export function propertyText(value: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes
    .toString("latin1")
    .replace(/[\0\s]+$/g, "")
    .replace(/[^\x20-\x7e]/g, "");
}

const hex32 = (value: number): string => `0x${(value >>> 0).toString(16).padStart(8, "0")}`;

/** The TpmInfo the reported fixed properties describe; a property the TPM did not report is left out. */
export function tpmInfoOf(properties: ReadonlyMap<number, number>): TpmInfo {
  const info: TpmInfo = {};
  const manufacturer = properties.get(TPM_PT_FIXED.MANUFACTURER);
  if (manufacturer !== undefined) info.manufacturer = propertyText(manufacturer);

  const vendorWords = [
    TPM_PT_FIXED.VENDOR_STRING_1,
    TPM_PT_FIXED.VENDOR_STRING_2,
    TPM_PT_FIXED.VENDOR_STRING_3,
    TPM_PT_FIXED.VENDOR_STRING_4,
  ].map((tag) => properties.get(tag));
  if (vendorWords.some((word) => word !== undefined)) {
    info.vendorString = vendorWords
      .map((word) => (word === undefined ? "" : propertyText(word).padEnd(4, " ")))
      .join("")
      .trim();
  }

  const version1 = properties.get(TPM_PT_FIXED.FIRMWARE_VERSION_1);
  const version2 = properties.get(TPM_PT_FIXED.FIRMWARE_VERSION_2);
  if (version1 !== undefined) {
    const parts = [version1 >>> 16, version1 & 0xffff];
    if (version2 !== undefined) parts.push(version2 >>> 16, version2 & 0xffff);
    info.firmwareVersion = parts.join(".");
    info.firmwareVersionRaw = {
      version1: hex32(version1),
      ...(version2 !== undefined ? { version2: hex32(version2) } : {}),
    };
  }

  const family = properties.get(TPM_PT_FIXED.FAMILY_INDICATOR);
  if (family !== undefined) info.specFamily = propertyText(family);
  const revision = properties.get(TPM_PT_FIXED.REVISION);
  // The revision is the specification's version times 100 (Part 2 §6.13): 159 is "1.59".
  if (revision !== undefined) info.specRevision = (revision / 100).toFixed(2);
  const year = properties.get(TPM_PT_FIXED.YEAR);
  const dayOfYear = properties.get(TPM_PT_FIXED.DAY_OF_YEAR);
  if (year !== undefined && dayOfYear !== undefined) info.specDate = { year, dayOfYear };
  return info;
}

/** The first tag and count of the fixed properties tpmInfoOf reads, for one GetCapability call. */
export const TPM_INFO_PROPERTIES = {
  first: TPM_PT_FIXED.FAMILY_INDICATOR,
  count: TPM_PT_FIXED.FIRMWARE_VERSION_2 - TPM_PT_FIXED.FAMILY_INDICATOR + 1,
} as const;
