// Where the session keeps what DPS assigned (hub + device id), so that a reconnect or a restart connects
// without registering again (DPS allows ~1,000 registrations/min per instance and 5 polls per 10 s per
// device, docs/conventions.md §5.2). Nothing secret is stored: keys stay in the configuration.
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export interface CachedRegistration {
  registrationId: string;
  /** IoT Hub host name as DPS returned it (may carry ":port" with the emulator). */
  assignedHub: string;
  deviceId: string;
  /** Which DPS scope assigned it: a different scope must not reuse it. */
  idScope: string;
}

export interface RegistrationStore {
  load(registrationId: string, idScope: string): Promise<CachedRegistration | undefined>;
  save(registration: CachedRegistration): Promise<void>;
  clear(registrationId: string, idScope: string): Promise<void>;
}

function keyOf(registrationId: string, idScope: string): string {
  // DPS treats both case-insensitively.
  return `${idScope.toLowerCase()}/${registrationId.toLowerCase()}`;
}

export class MemoryRegistrationStore implements RegistrationStore {
  private readonly entries = new Map<string, CachedRegistration>();

  load(registrationId: string, idScope: string): Promise<CachedRegistration | undefined> {
    const entry = this.entries.get(keyOf(registrationId, idScope));
    return Promise.resolve(entry ? { ...entry } : undefined);
  }

  save(registration: CachedRegistration): Promise<void> {
    this.entries.set(keyOf(registration.registrationId, registration.idScope), { ...registration });
    return Promise.resolve();
  }

  clear(registrationId: string, idScope: string): Promise<void> {
    this.entries.delete(keyOf(registrationId, idScope));
    return Promise.resolve();
  }
}

function isCachedRegistration(value: unknown): value is CachedRegistration {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["registrationId", "assignedHub", "deviceId", "idScope"].every(
    (field) => typeof v[field] === "string" && v[field] !== "",
  );
}

/**
 * One JSON file holding the registrations of any number of devices. Writes go to a temporary file that
 * is renamed over the old one, so a crash never leaves half a file; an unreadable file counts as empty.
 */
export class JsonFileRegistrationStore implements RegistrationStore {
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  async load(registrationId: string, idScope: string): Promise<CachedRegistration | undefined> {
    await this.writing;
    const entry = (await this.readAll())[keyOf(registrationId, idScope)];
    return isCachedRegistration(entry) ? { ...entry } : undefined;
  }

  save(registration: CachedRegistration): Promise<void> {
    return this.update((all) => {
      all[keyOf(registration.registrationId, registration.idScope)] = { ...registration };
    });
  }

  clear(registrationId: string, idScope: string): Promise<void> {
    return this.update((all) => {
      delete all[keyOf(registrationId, idScope)];
    });
  }

  private update(change: (all: Record<string, unknown>) => void): Promise<void> {
    const next = this.writing.then(async () => {
      const all = await this.readAll();
      change(all);
      await mkdir(dirname(this.path), { recursive: true });
      const temporary = `${this.path}.${process.pid}.tmp`;
      try {
        await writeFile(temporary, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
        await rename(temporary, this.path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    });
    // The chain continues after a failed write; the caller still sees the failure.
    this.writing = next.catch(() => undefined);
    return next;
  }

  private async readAll(): Promise<Record<string, unknown>> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.path, "utf8"));
      return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : {};
    } catch {
      return {};
    }
  }
}
