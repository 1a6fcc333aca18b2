import { CommandEngine, type EngineOptions } from "./command-engine.js";
import { TpmCommands } from "./commands.js";
import type { TpmConnectionSpec } from "./connection-spec.js";
import { PERSISTENT_HANDLE, TPM_ALG, TPM_PT_INPUT_BUFFER, TPM_RH } from "./constants.js";
import { baseResponseCode, TpmError } from "./errors.js";
import { parseActivationBlob } from "./activation-blob.js";
import { TpmReader } from "./marshal.js";
import { registrationIdFromEndorsementKey } from "./registration-id.js";
import { ENDORSEMENT_KEY_TEMPLATE, STORAGE_ROOT_KEY_TEMPLATE } from "./templates.js";
import { TPM_INFO_PROPERTIES, tpmInfoOf, type TpmInfo } from "./tpm-info.js";
import { settle, type Callback } from "../common/callback.js";

const TPM_RC_HANDLE = 0x08b;

export interface TpmSecurityClientOptions extends EngineOptions {
  /** Use this registration id instead of the one derived from the EK (group enrollments). */
  registrationId?: string;
}

interface PrimaryKeys {
  endorsementKey: Buffer;
  storageRootKey: Buffer;
}

/**
 * The TPM security client the Azure IoT SDK expects (`azure-iot-provisioning-device` TPM registration and
 * our TpmAuthenticationProvider), on our own TPM 2.0 client. Every method takes a Node-style callback, as
 * the SDK calls them, or returns a promise when called without one. Errors are TpmErrors, never throws.
 *
 * Same persistent handles and templates as azure-iot-security-tpm: EK 0x81010001, SRK 0x81000001 (created
 * and persisted when absent), identity key 0x81000100 (replaced on each activation).
 */
export class TpmSecurityClient {
  private readonly engine: CommandEngine;
  private readonly tpm: TpmCommands;
  private primaryKeys: PrimaryKeys | undefined;
  private inputBufferSize: number | undefined;
  private readonly fixedRegistrationId: string | undefined;

  constructor(connection: TpmConnectionSpec, options: TpmSecurityClientOptions = {}) {
    this.engine = new CommandEngine(connection, options);
    this.tpm = new TpmCommands(this.engine);
    this.fixedRegistrationId = options.registrationId;
  }

  /** A secret-free description of where the TPM is. */
  get description(): string {
    return this.engine.description;
  }

  getEndorsementKey(): Promise<Buffer>;
  getEndorsementKey(callback: Callback<Buffer>): void;
  getEndorsementKey(callback?: Callback<Buffer>): Promise<Buffer> | void {
    return respond(
      this.engine.exclusive(async () => (await this.ensurePrimaryKeys()).endorsementKey),
      callback,
    );
  }

  getStorageRootKey(): Promise<Buffer>;
  getStorageRootKey(callback: Callback<Buffer>): void;
  getStorageRootKey(callback?: Callback<Buffer>): Promise<Buffer> | void {
    return respond(
      this.engine.exclusive(async () => (await this.ensurePrimaryKeys()).storageRootKey),
      callback,
    );
  }

  getRegistrationId(): Promise<string>;
  getRegistrationId(callback: Callback<string>): void;
  getRegistrationId(callback?: Callback<string>): Promise<string> | void {
    const fixed = this.fixedRegistrationId;
    const id = fixed
      ? Promise.resolve(fixed)
      : this.engine.exclusive(async () =>
          registrationIdFromEndorsementKey((await this.ensurePrimaryKeys()).endorsementKey),
        );
    return respond(id, callback);
  }

  /** Imports the identity key DPS sent (the activation blob) and persists it at 0x81000100. */
  activateIdentityKey(activationBlob: Buffer): Promise<void>;
  activateIdentityKey(activationBlob: Buffer, callback: Callback<void>): void;
  activateIdentityKey(activationBlob: Buffer, callback?: Callback<void>): Promise<void> | void {
    return respond(
      this.engine.exclusive(() => this.activate(activationBlob)),
      callback,
    );
  }

  /** HMAC of `data` with the activated identity key, computed inside the TPM. */
  signWithIdentity(data: Buffer): Promise<Buffer>;
  signWithIdentity(data: Buffer, callback: Callback<Buffer>): void;
  signWithIdentity(data: Buffer, callback?: Callback<Buffer>): Promise<Buffer> | void {
    return respond(
      this.engine.exclusive(() => this.sign(data)),
      callback,
    );
  }

  /** Manufacturer, vendor string and firmware version, as far as the TPM reports them (read-only). */
  getTpmInfo(): Promise<TpmInfo> {
    return this.engine.exclusive(async () =>
      tpmInfoOf(await this.tpm.getProperties(TPM_INFO_PROPERTIES.first, TPM_INFO_PROPERTIES.count)),
    );
  }

  /** Releases the TPM connection. Queued calls fail with TPM_CLOSED. */
  close(): Promise<void> {
    return this.engine.close();
  }

  private async ensurePrimaryKeys(): Promise<PrimaryKeys> {
    if (!this.primaryKeys) {
      const endorsementKey = await this.ensurePersistentPrimary(
        PERSISTENT_HANDLE.endorsementKey,
        TPM_RH.ENDORSEMENT,
        ENDORSEMENT_KEY_TEMPLATE,
      );
      const storageRootKey = await this.ensurePersistentPrimary(
        PERSISTENT_HANDLE.storageRootKey,
        TPM_RH.OWNER,
        STORAGE_ROOT_KEY_TEMPLATE,
      );
      this.primaryKeys = { endorsementKey, storageRootKey };
    }
    return this.primaryKeys;
  }

  /** Reads a persistent primary key; creates and persists it only when it is absent. */
  private async ensurePersistentPrimary(
    persistentHandle: number,
    hierarchy: number,
    template: Buffer,
  ): Promise<Buffer> {
    try {
      return (await this.tpm.readPublic(persistentHandle)).tpm2bPublic;
    } catch (error) {
      if (!isMissingHandle(error)) throw error;
    }
    const created = await this.tpm.createPrimary(hierarchy, template);
    try {
      await this.tpm.evictControl(created.handle, persistentHandle);
    } finally {
      await this.tpm.flushContext(created.handle).catch(() => undefined);
    }
    return created.tpm2bPublic;
  }

  private async activate(activationBlob: Buffer): Promise<void> {
    if (!Buffer.isBuffer(activationBlob) || activationBlob.length === 0) {
      throw new TpmError("TPM_INVALID_INPUT", "activation blob is empty");
    }
    const blob = parseActivationBlob(activationBlob);
    const identityHashAlg = hmacHashAlgorithm(blob.identityKeyPublic); // refuse a non-HMAC key before touching the TPM
    await this.ensurePrimaryKeys();
    const { endorsementKey: ekHandle, storageRootKey: srkHandle, identityKey } = PERSISTENT_HANDLE;

    // The EK's policy is PolicySecret(endorsement): satisfy it in a policy session, flushed on every path.
    const session = await this.tpm.startPolicySession();
    let innerWrapKey: Buffer;
    try {
      await this.tpm.policySecret(TPM_RH.ENDORSEMENT, session);
      innerWrapKey = await this.tpm.activateCredential(
        srkHandle,
        ekHandle,
        session,
        blob.credentialBlob,
        blob.encryptedSecret,
      );
    } finally {
      await this.tpm.flushContext(session).catch(() => undefined);
    }

    const identityPrivate = await this.tpm.import(
      srkHandle,
      innerWrapKey,
      blob.identityKeyPublic,
      blob.duplicate,
      blob.encryptedSeed,
    );
    const loaded = await this.tpm.load(srkHandle, identityPrivate, blob.identityKeyPublic);
    try {
      // Replace the previous identity key, if any (EvictControl on a persistent handle removes it).
      await this.tpm.evictControl(identityKey, identityKey).catch((error: unknown) => {
        if (!isMissingHandle(error)) throw error;
      });
      await this.tpm.evictControl(loaded, identityKey);
    } finally {
      await this.tpm.flushContext(loaded).catch(() => undefined);
    }
    this.identityHashAlg = identityHashAlg;
  }

  private identityHashAlg: number | undefined;

  private async sign(data: Buffer): Promise<Buffer> {
    if (!Buffer.isBuffer(data) || data.length === 0)
      throw new TpmError("TPM_INVALID_INPUT", "nothing to sign");
    const hashAlg = this.identityHashAlg ?? (await this.readIdentityHashAlg());
    this.inputBufferSize ??= await this.tpm.getProperty(TPM_PT_INPUT_BUFFER);
    const maxChunk = this.inputBufferSize;
    const { identityKey } = PERSISTENT_HANDLE;
    if (data.length <= maxChunk) return this.tpm.hmac(identityKey, data, hashAlg);

    // Longer than one TPM input buffer: an HMAC sequence; a sequence left after a failure is flushed.
    const sequence = await this.tpm.hmacStart(identityKey, hashAlg);
    try {
      let offset = 0;
      for (; data.length - offset > maxChunk; offset += maxChunk) {
        await this.tpm.sequenceUpdate(sequence, data.subarray(offset, offset + maxChunk));
      }
      return await this.tpm.sequenceComplete(sequence, data.subarray(offset));
    } catch (error) {
      await this.tpm.flushContext(sequence).catch(() => undefined);
      throw error;
    }
  }

  private async readIdentityHashAlg(): Promise<number> {
    try {
      const { tpm2bPublic } = await this.tpm.readPublic(PERSISTENT_HANDLE.identityKey);
      const hashAlg = hmacHashAlgorithm(tpm2bPublic.subarray(2));
      this.identityHashAlg = hashAlg;
      return hashAlg;
    } catch (error) {
      if (isMissingHandle(error)) {
        throw new TpmError(
          "TPM_NOT_ACTIVATED",
          "no identity key in the TPM: activate one (provision) before signing",
        );
      }
      throw error;
    }
  }
}

function respond<T>(promise: Promise<T>, callback: Callback<T> | undefined): Promise<T> | void {
  if (!callback) return promise;
  settle(promise, callback);
}

function isMissingHandle(error: unknown): boolean {
  return (
    error instanceof TpmError &&
    error.code === "TPM_RESPONSE" &&
    baseResponseCode(error.responseCode ?? 0) === TPM_RC_HANDLE
  );
}

/** The hash algorithm of a KEYEDHASH key with an HMAC scheme (TPMT_PUBLIC, Part 2 §12.2.4, §12.2.3.3). */
function hmacHashAlgorithm(tpmtPublic: Buffer): number {
  try {
    const reader = new TpmReader(tpmtPublic, "identity key public area");
    const type = reader.u16();
    reader.u16(); // nameAlg
    reader.u32(); // objectAttributes
    reader.sized(); // authPolicy
    const scheme = reader.u16();
    if (type !== TPM_ALG.KEYEDHASH || scheme !== TPM_ALG.HMAC) {
      throw new TpmError("TPM_INVALID_INPUT", "the identity key is not an HMAC key");
    }
    return reader.u16();
  } catch (error) {
    if (error instanceof TpmError && error.code === "TPM_INVALID_INPUT") throw error;
    throw new TpmError("TPM_INVALID_INPUT", "malformed identity key public area", { cause: error });
  }
}
