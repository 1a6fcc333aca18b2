// Keeps the merged desired-properties document for "twin in" (JSON merge patch: null removes a property).

export type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Applies a desired-properties patch to a copy of `document` (RFC 7396 merge semantics). */
export function mergeDesired(document: Json, patch: Json): Json {
  const merged: Json = { ...document };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else if (isObject(value) && isObject(merged[key])) merged[key] = mergeDesired(merged[key], value);
    else merged[key] = value;
  }
  return merged;
}
