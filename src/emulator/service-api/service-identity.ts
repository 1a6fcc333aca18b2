// What makes one emulator instance recognisable across restarts: its DPS ID scope and the keys of its
// service shared access policies. Made once, kept in the data directory (owner-only: it holds keys).
import { randomBytes } from "node:crypto";
import { chmod, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SERVICE_IDENTITY_FILE = "emulator-identity.json";
const FILE_FORMAT_VERSION = 1;

/** Azure's policy names for the owner policies of DPS and IoT Hub. */
export const DPS_SERVICE_KEY_NAME = "provisioningserviceowner";
export const HUB_SERVICE_KEY_NAME = "iothubowner";

export interface ServiceIdentity {
  idScope: string;
  dpsServiceKey: string;
  hubServiceKey: string;
}

export class ServiceIdentityError extends Error {
  override readonly name = "ServiceIdentityError";
}

/** An ID scope shaped like Azure's ("0ne" + 8 upper-case hex digits). */
export function newIdScope(): string {
  return `0ne${randomBytes(4).toString("hex").toUpperCase()}`;
}

function newPolicyKey(): string {
  return randomBytes(32).toString("base64");
}

function isIdentity(value: unknown): value is ServiceIdentity & { version: number } {
  const v = value as Partial<ServiceIdentity & { version: number }> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    v.version === FILE_FORMAT_VERSION &&
    typeof v.idScope === "string" &&
    /^[A-Za-z0-9]{1,32}$/.test(v.idScope) &&
    typeof v.dpsServiceKey === "string" &&
    typeof v.hubServiceKey === "string"
  );
}

/** Loads the identity from `dataDir`, creating it on first start. */
export async function loadOrCreateServiceIdentity(dataDir: string): Promise<ServiceIdentity> {
  const file = join(dataDir, SERVICE_IDENTITY_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ServiceIdentityError(`${file} is not valid JSON; fix or remove it`);
    }
    if (!isIdentity(parsed)) throw new ServiceIdentityError(`${file} is not an emulator identity file`);
    return {
      idScope: parsed.idScope,
      dpsServiceKey: parsed.dpsServiceKey,
      hubServiceKey: parsed.hubServiceKey,
    };
  }
  const identity: ServiceIdentity = {
    idScope: newIdScope(),
    dpsServiceKey: newPolicyKey(),
    hubServiceKey: newPolicyKey(),
  };
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify({ version: FILE_FORMAT_VERSION, ...identity }, null, 2)}\n`, {
    mode: 0o600,
  });
  await chmod(temp, 0o600);
  await rename(temp, file);
  return identity;
}

export function serviceConnectionString(hostName: string, keyName: string, key: string): string {
  return `HostName=${hostName};SharedAccessKeyName=${keyName};SharedAccessKey=${key}`;
}
