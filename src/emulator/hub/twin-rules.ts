// Device twin rules as IoT Hub enforces them (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins, "Tags and properties format",
// "Device twin size"; docs/hub-amqp-protocol.md §4.6). Pure functions: no I/O, no state.

export const TwinLimits = {
  /** Desired and reported sections: 32 KB each. */
  propertiesSectionBytes: 32 * 1024,
  /** Tags: 8 KB. */
  tagsSectionBytes: 8 * 1024,
  /** Nested objects below a section root ("one" … "ten" in the docs' example is the deepest valid object). */
  maxDepth: 10,
  keyBytes: 1024,
  stringValueBytes: 4096,
  /** Integers in [-4503599627370496, 4503599627370495]. */
  minInteger: -4503599627370496,
  maxInteger: 4503599627370495,
} as const;

/** Keys must not contain '.', '$', '#', space or C0/C1 control characters (the service also refuses '#'). */
// eslint-disable-next-line no-control-regex
const INVALID_KEY_CHARACTER = /[.$# \u0000-\u001f\u007f-\u009f]/;

/** Properties the service manages; never part of a stored section. */
const SYSTEM_KEYS = new Set(["$version", "$metadata"]);

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A twin rule violation, with the message IoT Hub gives (ErrorCode ArgumentInvalid, 400004). */
export class TwinRuleViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TwinRuleViolation";
  }
}

/**
 * Checks keys and values of a patch or section. `allowSystemKeys` lets a service-side document carry
 * $version/$metadata at its root (they are ignored, not stored).
 */
export function validateTwinSection(section: JsonObject, allowSystemKeys = false): void {
  validateObject(section, allowSystemKeys, "");
}

function validateObject(object: JsonObject, allowSystemKeysHere: boolean, path: string): void {
  for (const [key, value] of Object.entries(object)) {
    if (allowSystemKeysHere && SYSTEM_KEYS.has(key)) continue;
    const name = path + key;
    if (key.length === 0 || Buffer.byteLength(key) > TwinLimits.keyBytes) {
      throw new TwinRuleViolation(`Property or Tag name should be maximum ${TwinLimits.keyBytes} bytes.`);
    }
    if (INVALID_KEY_CHARACTER.test(key)) {
      throw new TwinRuleViolation(
        `Property or Tag name has invalid characters. Error in Property/Tag ${name}. ` +
          `Must not contain Control Characters, '.', '$', '#', or ' '.`,
      );
    }
    validateValue(value, name);
  }
}

function validateValue(value: unknown, name: string): void {
  if (value === null || typeof value === "boolean") return;
  if (typeof value === "string") {
    if (Buffer.byteLength(value) > TwinLimits.stringValueBytes) {
      throw new TwinRuleViolation(
        `Property or Tag value should be maximum ${TwinLimits.stringValueBytes} bytes.`,
      );
    }
    return;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TwinRuleViolation(`Property ${name} has an invalid number.`);
    if (Number.isInteger(value) && (value < TwinLimits.minInteger || value > TwinLimits.maxInteger)) {
      throw new TwinRuleViolation(
        `Property ${name} has an integer value out of range [${TwinLimits.minInteger}, ${TwinLimits.maxInteger}].`,
      );
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, index) => validateValue(item, `${name}[${index}]`));
    return;
  }
  if (isJsonObject(value)) {
    validateObject(value, false, `${name}.`);
    return;
  }
  throw new TwinRuleViolation(`Property ${name} has an unsupported value type.`);
}

/** Number of nested objects below the root (arrays count as a level, like objects). */
export function nestingDepth(value: unknown): number {
  let deepest = 0;
  const children = Array.isArray(value) ? value : isJsonObject(value) ? Object.values(value) : [];
  for (const child of children) {
    if (typeof child === "object" && child !== null) deepest = Math.max(deepest, 1 + nestingDepth(child));
  }
  return deepest;
}

/** Section size as the docs define it: key bytes + value bytes (strings UTF-8, numbers 8, booleans 4). */
export function sectionSize(value: unknown): number {
  if (typeof value === "string") return Buffer.byteLength(value);
  if (typeof value === "number") return 8;
  if (typeof value === "boolean") return 4;
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + sectionSize(item), 0);
  if (isJsonObject(value)) {
    let size = 0;
    for (const [key, child] of Object.entries(value)) {
      if (SYSTEM_KEYS.has(key) || child === null) continue;
      size += Buffer.byteLength(key) + sectionSize(child);
    }
    return size;
  }
  return 0;
}

/** Throws when a whole stored section breaks the depth or size limit. */
export function checkSectionLimits(section: JsonObject, kind: "desired" | "reported" | "tags"): void {
  const depth = nestingDepth(section);
  if (depth > TwinLimits.maxDepth) {
    throw new TwinRuleViolation(
      `The ${kind === "tags" ? "tags" : `${kind} properties`} nesting depth ${depth} exceeds the maximum allowed depth of ${TwinLimits.maxDepth}.`,
    );
  }
  const limit = kind === "tags" ? TwinLimits.tagsSectionBytes : TwinLimits.propertiesSectionBytes;
  const size = sectionSize(section);
  if (size > limit) {
    throw new TwinRuleViolation(
      `The ${kind === "tags" ? "tags" : `${kind} properties`} size ${size} bytes exceeds the maximum of ${limit} bytes.`,
    );
  }
}

/** JSON merge patch (RFC 7396) as twins use it: objects merge, null deletes, scalars and arrays replace. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (SYSTEM_KEYS.has(key)) continue;
    if (value === null) {
      delete result[key];
    } else if (isJsonObject(value)) {
      const current = result[key];
      result[key] = mergePatch(isJsonObject(current) ? current : {}, value);
    } else {
      result[key] = cloneJson(value);
    }
  }
  return result;
}

/** Drops $version/$metadata and nulls (a replacement document stores no nulls). */
export function withoutSystemKeys(section: JsonObject): JsonObject {
  return mergePatch({}, section);
}

export function cloneJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** Twin etag as IoT Hub writes it: base64 of the 8-byte big-endian twin version ("AAAAAAAAAAc=" for 7). */
export function twinEtag(version: number): string {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt(version));
  return bytes.toString("base64");
}
