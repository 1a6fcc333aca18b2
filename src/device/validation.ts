// Checks the nodes (and plain scripts) run before anything reaches the network. Pure functions; each
// returns normally or throws a ValidationError whose message says what is wrong and what the limit is.
// Limits: IoT Hub quotas (docs/hub-amqp-protocol.md §7, docs/conventions.md §5.1) and DPS ID scopes.
import { ValidationError } from "./errors.js";

export const Limits = {
  /** D2C message: body + application property names and values (docs/hub-amqp-protocol.md §7). */
  telemetryBytes: 256 * 1024,
  /** Reported (and desired) section: key bytes + value bytes (device twin doc, "Device twin size"). */
  twinPatchBytes: 32 * 1024,
  /** Nested objects below the patch root. */
  twinDepth: 10,
  twinKeyBytes: 1024,
  twinStringValueBytes: 4096,
  /** message-id / correlation-id length (docs/hub-amqp-protocol.md §7). */
  messageIdLength: 128,
} as const;

/** ID scope as DPS issues it: "0ne" followed by 8 hex digits, e.g. 0ne00012345 (any case). */
const ID_SCOPE = /^0ne[0-9a-f]{8}$/i;

// Twin keys must not contain '.', '$', '#', space or C0/C1 control characters (the service refuses '#' too).
// eslint-disable-next-line no-control-regex
const INVALID_TWIN_KEY_CHARACTER = /[.$# \u0000-\u001f\u007f-\u009f]/;

export function validateIdScope(idScope: unknown): string {
  if (typeof idScope !== "string" || idScope.trim() === "") {
    throw new ValidationError("ID scope is required (it looks like 0ne00012345)");
  }
  const trimmed = idScope.trim();
  if (!ID_SCOPE.test(trimmed)) {
    throw new ValidationError(
      `ID scope "${trimmed}" is not valid: expected "0ne" followed by 8 hexadecimal digits, e.g. 0ne00012345`,
    );
  }
  return trimmed;
}

/** DPS registration id rules (docs/dps-protocol.md §6.5): <= 128 chars of [A-Za-z0-9-._:], ending alphanumeric or '-'. */
export function validateRegistrationId(registrationId: unknown): string {
  if (typeof registrationId !== "string" || registrationId === "") {
    throw new ValidationError("registration id is required");
  }
  if (registrationId.length > 128) {
    throw new ValidationError(
      `registration id is ${registrationId.length} characters long; the maximum is 128`,
    );
  }
  if (!/^[A-Za-z0-9\-._:]+$/.test(registrationId) || !/[A-Za-z0-9-]$/.test(registrationId)) {
    throw new ValidationError(
      `registration id "${registrationId}" is not valid: use letters, digits and - . _ : and end with a letter, digit or -`,
    );
  }
  return registrationId;
}

/**
 * The body as it is sent: objects as JSON text, strings and Buffers as they are, numbers and booleans as text.
 * Throws a ValidationError for what cannot be sent. Serialised once, here: the size check and the message use it.
 */
export function telemetryBody(payload: unknown): string | Buffer {
  if (payload === undefined || payload === null) {
    throw new ValidationError("telemetry payload is missing: send an object, a string or a Buffer");
  }
  if (Buffer.isBuffer(payload) || typeof payload === "string") return payload;
  if (typeof payload === "number" || typeof payload === "boolean") return String(payload);
  const kind = typeof payload;
  if (kind !== "object") {
    throw new ValidationError(
      `telemetry payload of type ${kind} cannot be sent: use an object, a string or a Buffer`,
    );
  }
  try {
    return JSON.stringify(payload) ?? "";
  } catch (error) {
    throw new ValidationError(`telemetry payload cannot be serialised as JSON (${(error as Error).message})`);
  }
}

/**
 * A body (from telemetryBody) with its application properties, names and values as the text they are sent as,
 * fits IoT Hub's 256 KB; returns the size.
 */
export function checkTelemetrySize(body: string | Buffer, properties: Record<string, string> = {}): number {
  let size = Buffer.isBuffer(body) ? body.length : Buffer.byteLength(body);
  for (const [name, value] of Object.entries(properties))
    size += Buffer.byteLength(name) + Buffer.byteLength(value);
  if (size > Limits.telemetryBytes) {
    throw new ValidationError(
      `telemetry message is ${size} bytes (payload and properties); IoT Hub accepts at most ${Limits.telemetryBytes} bytes (256 KB)`,
    );
  }
  return size;
}

/**
 * A telemetry payload is an object (sent as JSON), a string or a Buffer, and together with its
 * application properties fits IoT Hub's 256 KB message limit.
 */
export function validateTelemetry(payload: unknown, properties: Record<string, string> = {}): number {
  return checkTelemetrySize(telemetryBody(payload), properties);
}

/** message-id / correlation-id: at most 128 ASCII characters from IoT Hub's allowed set. */
export function validateMessageId(value: string, field: "messageId" | "correlationId"): string {
  if (value.length === 0 || value.length > Limits.messageIdLength) {
    throw new ValidationError(`${field} must be 1 to ${Limits.messageIdLength} characters long`);
  }
  if (!/^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$/.test(value)) {
    throw new ValidationError(
      `${field} "${value}" has characters IoT Hub does not accept: use letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`,
    );
  }
  return value;
}

/** A twin property name: 1 byte to 1 KB of UTF-8, without '.', '$', '#', space or control characters. */
export function validateTwinKey(key: string, path = key): void {
  if (key.length === 0) throw new ValidationError(`twin property name at "${path}" is empty`);
  if (Buffer.byteLength(key) > Limits.twinKeyBytes) {
    throw new ValidationError(
      `twin property name "${path.slice(0, 64)}..." is longer than ${Limits.twinKeyBytes} bytes`,
    );
  }
  if (INVALID_TWIN_KEY_CHARACTER.test(key)) {
    throw new ValidationError(
      `twin property name "${path}" is not valid: names must not contain '.', '$', '#', spaces or control characters`,
    );
  }
}

/** Nested objects/arrays below the root: {a: 1} is depth 0, {a: {b: 1}} depth 1 (as the hub counts). */
export function twinDepth(value: object): number {
  let deepest = 0;
  // Object.values of an array is its items.
  for (const child of Object.values(value) as unknown[]) {
    if (typeof child === "object" && child !== null) deepest = Math.max(deepest, 1 + twinDepth(child));
  }
  return deepest;
}

/** Twin size as the hub counts it: key bytes + value bytes (strings UTF-8, numbers 8, booleans 4, null 0). */
export function twinSize(value: unknown): number {
  if (typeof value === "string") return Buffer.byteLength(value);
  if (typeof value === "number") return 8;
  if (typeof value === "boolean") return 4;
  if (Array.isArray(value))
    return (value as unknown[]).reduce((sum: number, item) => sum + twinSize(item), 0);
  if (typeof value === "object" && value !== null) {
    let size = 0;
    for (const [key, child] of Object.entries(value)) size += Buffer.byteLength(key) + twinSize(child);
    return size;
  }
  return 0;
}

/**
 * A reported-properties patch: a plain object (null deletes a property), valid names, values that are
 * JSON (string <= 4 KB, finite numbers), depth <= 10 and size <= 32 KB.
 */
export function validateTwinPatch(patch: unknown): Record<string, unknown> {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch) || Buffer.isBuffer(patch)) {
    const kind = patch === null ? "null" : Array.isArray(patch) ? "an array" : typeof patch;
    throw new ValidationError(`a twin patch must be an object of property names to values, not ${kind}`);
  }
  validateTwinObject(patch as Record<string, unknown>, "", new Set([patch]));
  const depth = twinDepth(patch);
  if (depth > Limits.twinDepth) {
    throw new ValidationError(
      `twin patch is nested ${depth} levels deep; the maximum is ${Limits.twinDepth}`,
    );
  }
  const size = twinSize(patch);
  if (size > Limits.twinPatchBytes) {
    throw new ValidationError(
      `twin patch is ${size} bytes; IoT Hub accepts at most ${Limits.twinPatchBytes} bytes (32 KB)`,
    );
  }
  return patch as Record<string, unknown>;
}

/** `ancestors`: the objects above this one, so that a circular value is named instead of overflowing the stack. */
function validateTwinObject(object: Record<string, unknown>, prefix: string, ancestors: Set<object>): void {
  for (const [key, value] of Object.entries(object)) {
    const path = prefix + key;
    validateTwinKey(key, path);
    validateTwinValue(value, path, ancestors);
  }
}

function validateTwinValue(value: unknown, path: string, ancestors: Set<object>): void {
  if (ancestors.has(value as object)) {
    throw new ValidationError(`twin property "${path}" refers back to an object that contains it (circular)`);
  }
  if (value === null || typeof value === "boolean") return;
  if (typeof value === "string") {
    if (Buffer.byteLength(value) > Limits.twinStringValueBytes) {
      throw new ValidationError(
        `twin property "${path}" has a string longer than ${Limits.twinStringValueBytes} bytes`,
      );
    }
    return;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ValidationError(`twin property "${path}" is not a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    ancestors.add(value);
    value.forEach((item, index) => validateTwinValue(item, `${path}[${index}]`, ancestors));
    ancestors.delete(value);
    return;
  }
  if (typeof value === "object" && !Buffer.isBuffer(value)) {
    ancestors.add(value);
    validateTwinObject(value as Record<string, unknown>, `${path}.`, ancestors);
    ancestors.delete(value);
    return;
  }
  throw new ValidationError(
    `twin property "${path}" has a value of type ${typeof value}, which JSON cannot carry`,
  );
}
