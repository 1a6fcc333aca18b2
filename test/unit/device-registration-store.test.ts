// The registration stores beyond the basics (device-config-and-store.test.ts): each device keeps its own entry,
// callers get copies, an entry or file of the wrong shape counts as absent, writes queue one after the other,
// and a write that fails leaves no temporary file and does not block the next.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  JsonFileRegistrationStore,
  MemoryRegistrationStore,
  type CachedRegistration,
  type RegistrationStore,
} from "../../src/device/registration-store.js";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "provisio-registration-store-"));
  dirs.push(dir);
  return dir;
}

function registration(registrationId: string, idScope = "0ne00012345"): CachedRegistration {
  return {
    registrationId,
    idScope,
    assignedHub: `hub-of-${registrationId}.example`,
    deviceId: registrationId,
  };
}

const stores: Array<[string, () => Promise<RegistrationStore>]> = [
  ["memory", () => Promise.resolve(new MemoryRegistrationStore())],
  ["JSON file", async () => new JsonFileRegistrationStore(join(await freshDir(), "registrations.json"))],
];

for (const [kind, make] of stores) {
  describe(`${kind} registration store`, () => {
    it("keeps one entry per device and scope, and clears only the one asked for", async () => {
      const store = await make();
      const a = registration("dev-a");
      const b = registration("dev-b");
      const otherScope = registration("dev-a", "0ne000abcde");
      for (const r of [a, b, otherScope]) await store.save(r);
      assert.deepEqual(await store.load("dev-a", "0ne00012345"), a);
      assert.deepEqual(await store.load("dev-b", "0ne00012345"), b);
      assert.deepEqual(await store.load("dev-a", "0ne000abcde"), otherScope);
      await store.clear("dev-a", "0ne00012345");
      assert.equal(await store.load("dev-a", "0ne00012345"), undefined);
      assert.deepEqual(await store.load("dev-b", "0ne00012345"), b);
      assert.deepEqual(await store.load("dev-a", "0ne000abcde"), otherScope);
    });

    it("keeps a scope and a registration id apart even when their texts run together", async () => {
      const store = await make();
      await store.save(registration("x", "0ne0001234"));
      assert.equal(await store.load("5x", "0ne000123"), undefined);
      assert.equal(await store.load("4x", "0ne000123"), undefined);
    });

    it("hands out copies: changing one changes neither the store nor what was saved", async () => {
      const store = await make();
      const saved = registration("dev-c");
      await store.save(saved);
      saved.assignedHub = "changed after save";
      const loaded = await store.load("dev-c", "0ne00012345");
      assert.ok(loaded);
      assert.equal(loaded.assignedHub, "hub-of-dev-c.example");
      loaded.deviceId = "changed after load";
      assert.equal((await store.load("dev-c", "0ne00012345"))?.deviceId, "dev-c");
    });
  });
}

describe("JSON file registration store", () => {
  it("counts an entry without every field, or with an empty one, as absent", async () => {
    const path = join(await freshDir(), "registrations.json");
    const whole = registration("dev-1");
    const entries: Record<string, unknown> = {};
    const broken = {
      "no-hub": { ...whole, registrationId: "no-hub", assignedHub: undefined },
      "empty-id": { ...whole, registrationId: "empty-id", deviceId: "" },
      "number-scope": { ...whole, registrationId: "number-scope", idScope: 5 },
      "not-an-object": "dev-1",
      "null-entry": null,
    };
    for (const [id, value] of Object.entries(broken)) entries[`0ne00012345/${id}`] = value;
    entries["0ne00012345/dev-1"] = whole;
    await writeFile(path, JSON.stringify(entries));
    const store = new JsonFileRegistrationStore(path);
    for (const id of Object.keys(broken)) assert.equal(await store.load(id, "0ne00012345"), undefined, id);
    assert.deepEqual(await store.load("dev-1", "0ne00012345"), whole);
  });

  it("counts a file holding an array, a number or null as empty, and writes a usable one over it", async () => {
    const dir = await freshDir();
    for (const [name, text] of [
      ["array", "[]"],
      ["number", "7"],
      ["null", "null"],
    ]) {
      const path = join(dir, `${name}.json`);
      await writeFile(path, text);
      const store = new JsonFileRegistrationStore(path);
      assert.equal(await store.load("dev-1", "0ne00012345"), undefined);
      await store.save(registration("dev-1"));
      const reopened = new JsonFileRegistrationStore(path);
      assert.deepEqual(await reopened.load("dev-1", "0ne00012345"), registration("dev-1"), name);
      assert.deepEqual(Object.keys(JSON.parse(await readFile(path, "utf8")) as object), [
        "0ne00012345/dev-1",
      ]);
    }
  });

  it("writes saves made at once one after the other: none is lost, and a load waits for them", async () => {
    const path = join(await freshDir(), "registrations.json");
    const store = new JsonFileRegistrationStore(path);
    const ids = ["d1", "d2", "d3", "d4"];
    const saving = ids.map((id) => store.save(registration(id)));
    const loaded = store.load("d4", "0ne00012345");
    assert.deepEqual(await loaded, registration("d4"));
    await Promise.all(saving);
    const reopened = new JsonFileRegistrationStore(path);
    for (const id of ids) assert.deepEqual(await reopened.load(id, "0ne00012345"), registration(id));
  });

  // sysfs refuses to create a file, to root too: the temporary file is never made. Linux only.
  it("reports why a write failed when its temporary file could not even be made", async (t) => {
    const refusingDir = "/sys/kernel";
    if (!(await stat(refusingDir).catch(() => undefined))?.isDirectory()) {
      return t.skip(`no ${refusingDir} here`);
    }
    const store = new JsonFileRegistrationStore(join(refusingDir, "provisio-registrations.json"));
    await assert.rejects(store.save(registration("dev-1")), (error: NodeJS.ErrnoException) => {
      // EACCES; EROFS where /sys is mounted read-only (containers). Never rm's ENOENT for the missing file.
      assert.ok(["EACCES", "EROFS"].includes(error.code ?? ""), String(error));
      assert.equal(error.syscall, "open");
      return true;
    });
  });

  it("reports a write that fails, leaves no temporary file, and goes on with the next", async () => {
    const dir = await freshDir();
    const path = join(dir, "registrations.json");
    // A directory with something in it where the file should be: the rename over it fails.
    await mkdir(join(path, "occupied"), { recursive: true });
    const store = new JsonFileRegistrationStore(path);
    await assert.rejects(store.save(registration("dev-1")));
    assert.deepEqual(await readdir(dir), ["registrations.json"]);
    // The chain goes on after the failure: a load answers, and a save fails again on its own.
    assert.equal(await store.load("dev-1", "0ne00012345"), undefined);
    await assert.rejects(store.clear("dev-1", "0ne00012345"));
    await rm(path, { recursive: true });
    await store.save(registration("dev-2"));
    assert.deepEqual(await store.load("dev-2", "0ne00012345"), registration("dev-2"));
    assert.deepEqual((await readdir(dir)).sort(), ["registrations.json"]);
  });
});
