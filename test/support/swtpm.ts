import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSwtpm, type SwtpmInstance } from "../../src/swtpm/launcher.js";

export interface TestTpm extends SwtpmInstance {
  /** Stops swtpm and removes its state folder. */
  dispose(): Promise<void>;
}

/** A fresh swtpm with its own state folder in the system temp dir. */
export async function startTestTpm(stateDir?: string): Promise<TestTpm> {
  const dir = stateDir ?? (await mkdtemp(join(tmpdir(), "provisio-swtpm-")));
  const instance = await startSwtpm({ stateDir: dir });
  return Object.assign(instance, {
    dispose: async () => {
      await instance.stop();
      if (!stateDir) await rm(dir, { recursive: true, force: true });
    },
  });
}
