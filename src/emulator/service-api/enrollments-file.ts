// Seeding DPS from a JSON file at start (CLI --enrollments). The file holds enrollments in the service API's
// shapes, either as {"enrollments": [...], "enrollmentGroups": [...]} (also "individualEnrollments") or as
// one array mixing both (told apart by registrationId / enrollmentGroupId). Applying it twice changes
// nothing: an entry that already matches is left alone, and keys the file does not give are kept from the
// stored entry instead of being generated again.
import { readFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import type { EnrollmentGroup, IndividualEnrollment } from "../dps/types.js";
import type { DpsServiceStore } from "./dps-routes.js";

export class EnrollmentsFileError extends Error {
  override readonly name = "EnrollmentsFileError";
}

export interface EnrollmentsFileContent {
  enrollments: IndividualEnrollment[];
  enrollmentGroups: EnrollmentGroup[];
}

export interface AppliedEnrollments {
  created: string[];
  updated: string[];
  unchanged: string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseEnrollmentsFile(text: string, source = "enrollments file"): EnrollmentsFileContent {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new EnrollmentsFileError(`${source} is not valid JSON`);
  }
  const content: EnrollmentsFileContent = { enrollments: [], enrollmentGroups: [] };
  const sort = (entry: unknown, where: string) => {
    if (!isObject(entry)) throw new EnrollmentsFileError(`${source}: ${where} is not an object`);
    if (typeof entry.registrationId === "string")
      content.enrollments.push(entry as unknown as IndividualEnrollment);
    else if (typeof entry.enrollmentGroupId === "string") {
      content.enrollmentGroups.push(entry as unknown as EnrollmentGroup);
    } else
      throw new EnrollmentsFileError(`${source}: ${where} has neither registrationId nor enrollmentGroupId`);
  };
  if (Array.isArray(data)) {
    data.forEach((entry, index) => sort(entry, `entry ${index}`));
    return content;
  }
  if (!isObject(data)) throw new EnrollmentsFileError(`${source} must hold an object or an array`);
  for (const field of ["enrollments", "individualEnrollments", "enrollmentGroups"] as const) {
    const list = data[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new EnrollmentsFileError(`${source}: ${field} must be an array`);
    list.forEach((entry, index) => sort(entry, `${field}[${index}]`));
  }
  return content;
}

/** Fields the service fills in; they take no part in "does the stored entry already match the file". */
const SERVICE_FIELDS = new Set(["etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "registrationState"]);

/** True when every field the file gives is already stored with that value (keys the file omits are ignored). */
function alreadyMatches(wanted: Record<string, unknown>, stored: Record<string, unknown>): boolean {
  for (const [field, value] of Object.entries(wanted)) {
    if (SERVICE_FIELDS.has(field)) continue;
    if (field === "attestation" && isObject(value) && isObject(stored.attestation)) {
      if (!alreadyMatches(value, stored.attestation)) return false;
      continue;
    }
    if (field === "symmetricKey" && isObject(value) && isObject(stored.symmetricKey)) {
      if (!alreadyMatches(value, stored.symmetricKey)) return false;
      continue;
    }
    if (!isDeepStrictEqual(value, stored[field])) return false;
  }
  return true;
}

/** The file's entry, with the stored symmetric keys carried over where the file gives none. */
function withStoredKeys<T extends IndividualEnrollment | EnrollmentGroup>(
  wanted: T,
  stored: T | undefined,
): T {
  const keys = stored?.attestation?.symmetricKey;
  if (wanted.attestation?.type !== "symmetricKey" || stored?.attestation?.type !== "symmetricKey" || !keys) {
    return wanted;
  }
  const given = wanted.attestation.symmetricKey;
  return {
    ...wanted,
    attestation: {
      ...wanted.attestation,
      symmetricKey: {
        primaryKey: given?.primaryKey || keys.primaryKey,
        ...((given?.secondaryKey || keys.secondaryKey) !== undefined
          ? { secondaryKey: given?.secondaryKey || keys.secondaryKey }
          : {}),
      },
    },
  };
}

export function applyEnrollments(
  store: DpsServiceStore,
  content: EnrollmentsFileContent,
): AppliedEnrollments {
  const applied: AppliedEnrollments = { created: [], updated: [], unchanged: [] };
  for (const group of content.enrollmentGroups) {
    const { etag: _etag, ...wanted } = group;
    const stored = store.getEnrollmentGroup(group.enrollmentGroupId);
    const label = `group:${group.enrollmentGroupId}`;
    if (stored && alreadyMatches(wanted, stored as unknown as Record<string, unknown>)) {
      applied.unchanged.push(label);
      continue;
    }
    store.putEnrollmentGroup(withStoredKeys(wanted as EnrollmentGroup, stored));
    (stored ? applied.updated : applied.created).push(label);
  }
  for (const enrollment of content.enrollments) {
    const { etag: _etag, registrationState: _state, ...wanted } = enrollment;
    const stored = store.getIndividualEnrollment(enrollment.registrationId);
    const label = `enrollment:${enrollment.registrationId}`;
    if (stored && alreadyMatches(wanted, stored as unknown as Record<string, unknown>)) {
      applied.unchanged.push(label);
      continue;
    }
    store.putIndividualEnrollment(withStoredKeys(wanted as IndividualEnrollment, stored));
    (stored ? applied.updated : applied.created).push(label);
  }
  return applied;
}

export async function applyEnrollmentsFile(
  store: DpsServiceStore,
  file: string,
): Promise<AppliedEnrollments> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new EnrollmentsFileError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
  return applyEnrollments(store, parseEnrollmentsFile(text, file));
}
