// TPM figures: our TPM client against the Azure SDK's (azure-iot-security-tpm on tss.js), same swtpm, same
// run, in milliseconds per operation (lower is better).
import { randomBytes } from "node:crypto";
import { buildActivationBlob } from "../src/emulator/tpm-activation.js";
import { TpmSecurityClient } from "../src/tpm/index.js";
import { sdkTpmOracle } from "../test/support/sdk-tpm-oracle.js";
import { startTestTpm } from "../test/support/swtpm.js";

interface Subject {
  name: string;
  getEndorsementKey(): Promise<Buffer>;
  activateIdentityKey(blob: Buffer): Promise<void>;
  signWithIdentity(data: Buffer): Promise<Buffer>;
  close(): Promise<void> | void;
}

async function timeEach(iterations: number, work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await work();
  return Number(process.hrtime.bigint() - start) / 1e6 / iterations;
}

async function measure(subject: Subject, ek: Buffer, srk: Buffer): Promise<Record<string, number>> {
  const coldStart = process.hrtime.bigint();
  await subject.getEndorsementKey();
  const connectAndReadEk = Number(process.hrtime.bigint() - coldStart) / 1e6;
  const key = randomBytes(32);
  const blobs = Array.from({ length: 10 }, () => buildActivationBlob(ek, srk, key));
  let next = 0;
  const activation = await timeEach(blobs.length, () => subject.activateIdentityKey(blobs[next++]));
  const small = randomBytes(40);
  const large = randomBytes(5000);
  const sign40 = await timeEach(200, () => subject.signWithIdentity(small));
  const sign5000 = await timeEach(50, () => subject.signWithIdentity(large));
  return { connectAndReadEk, activation, sign40, sign5000 };
}

/** One round of every TPM figure, ours and the SDK's, in ms per operation. */
export async function tpmRound(): Promise<Array<{ metric: string; ours: number; sdk: number }>> {
  const tpm = await startTestTpm();
  try {
    const setup = new TpmSecurityClient(tpm.connection);
    const ek = await setup.getEndorsementKey();
    const srk = await setup.getStorageRootKey();
    await setup.close();

    const ours = new TpmSecurityClient(tpm.connection);
    const oursResult = await measure(
      {
        name: "ours",
        getEndorsementKey: () => ours.getEndorsementKey(),
        activateIdentityKey: (b) => ours.activateIdentityKey(b),
        signWithIdentity: (d) => ours.signWithIdentity(d),
        close: () => ours.close(),
      },
      ek,
      srk,
    );
    await ours.close();

    const sdk = sdkTpmOracle(tpm.connection);
    const sdkResult = await measure({ name: "sdk", ...sdk }, ek, srk);
    sdk.close();
    return Object.keys(oursResult).map((metric) => ({
      metric,
      ours: oursResult[metric],
      sdk: sdkResult[metric],
    }));
  } finally {
    await tpm.dispose();
  }
}
