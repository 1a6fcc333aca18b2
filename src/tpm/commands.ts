import { randomBytes } from "node:crypto";
import { PASSWORD, type CommandEngine } from "./command-engine.js";
import { TPM_ALG, TPM_CAP_TPM_PROPERTIES, TPM_RH, TPM_SE_POLICY } from "./constants.js";
import { TpmError } from "./errors.js";
import { TpmWriter } from "./marshal.js";

const EMPTY = Buffer.alloc(0);

export interface PublicArea {
  /** TPM2B_PUBLIC as the TPM returned it, size prefix included (what DPS receives as EK/SRK). */
  tpm2bPublic: Buffer;
  /** The object's Name (nameAlg || digest). */
  name: Buffer;
}

/**
 * The TPM 2.0 commands Azure DPS attestation needs (Part 3 section per command), each one command on the
 * wire. Callers combine them inside `engine.exclusive` so that multi-command operations do not interleave.
 */
export class TpmCommands {
  constructor(readonly engine: CommandEngine) {}

  /** Part 3 §12.4 TPM2_ReadPublic */
  async readPublic(handle: number): Promise<PublicArea> {
    const { parameters } = await this.engine.execute("ReadPublic", { handles: [handle] });
    const tpm2bPublic = parameters.sizedWithPrefix();
    const name = parameters.sized();
    return { tpm2bPublic, name };
  }

  /** Part 3 §24.1 TPM2_CreatePrimary with an empty auth value and no creation PCRs. */
  async createPrimary(hierarchy: number, template: Buffer): Promise<PublicArea & { handle: number }> {
    const parameters = new TpmWriter()
      .sized(new TpmWriter().sized(EMPTY).sized(EMPTY).toBuffer()) // TPM2B_SENSITIVE_CREATE
      .sized(template) // TPM2B_PUBLIC
      .sized(EMPTY) // outsideInfo
      .u32(0) // TPML_PCR_SELECTION count
      .toBuffer();
    const response = await this.engine.execute("CreatePrimary", {
      handles: [hierarchy],
      authorizations: [PASSWORD],
      parameters,
      responseHandleCount: 1,
    });
    const tpm2bPublic = response.parameters.sizedWithPrefix();
    response.parameters.sized(); // creationData
    response.parameters.sized(); // creationHash
    response.parameters.u16(); // creationTicket.tag
    response.parameters.u32(); // creationTicket.hierarchy
    response.parameters.sized(); // creationTicket.digest
    const name = response.parameters.sized();
    return { handle: response.handles[0] ?? 0, tpm2bPublic, name };
  }

  /** Part 3 §28.5 TPM2_EvictControl under the owner hierarchy. */
  async evictControl(objectHandle: number, persistentHandle: number): Promise<void> {
    await this.engine.execute("EvictControl", {
      handles: [TPM_RH.OWNER, objectHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().u32(persistentHandle).toBuffer(),
    });
  }

  /** Part 3 §11.1 TPM2_StartAuthSession: an unbound, unsalted SHA-256 policy session. */
  async startPolicySession(): Promise<number> {
    const parameters = new TpmWriter()
      .sized(randomBytes(32)) // nonceCaller
      .sized(EMPTY) // encryptedSalt
      .u8(TPM_SE_POLICY)
      .u16(TPM_ALG.NULL) // symmetric: none
      .u16(TPM_ALG.SHA256)
      .toBuffer();
    const response = await this.engine.execute("StartAuthSession", {
      handles: [TPM_RH.NULL, TPM_RH.NULL],
      parameters,
      responseHandleCount: 1,
    });
    return response.handles[0] ?? 0;
  }

  /** Part 3 §23.4 TPM2_PolicySecret: the session's policy asserts knowledge of `authHandle`'s auth value. */
  async policySecret(authHandle: number, sessionHandle: number): Promise<void> {
    const parameters = new TpmWriter().sized(EMPTY).sized(EMPTY).sized(EMPTY).u32(0).toBuffer();
    await this.engine.execute("PolicySecret", {
      handles: [authHandle, sessionHandle],
      authorizations: [PASSWORD],
      parameters,
    });
  }

  /** Part 3 §12.5 TPM2_ActivateCredential. Returns the credential (certInfo). */
  async activateCredential(
    activateHandle: number,
    keyHandle: number,
    policySession: number,
    credentialBlob: Buffer,
    secret: Buffer,
  ): Promise<Buffer> {
    const response = await this.engine.execute("ActivateCredential", {
      handles: [activateHandle, keyHandle],
      authorizations: [PASSWORD, { kind: "policy", sessionHandle: policySession }],
      parameters: new TpmWriter().sized(credentialBlob).sized(secret).toBuffer(),
    });
    return response.parameters.sized();
  }

  /** Part 3 §13.3 TPM2_Import with an AES-CFB inner wrapper. Returns the TPM2B_PRIVATE contents. */
  async import(
    parentHandle: number,
    encryptionKey: Buffer,
    objectPublic: Buffer,
    duplicate: Buffer,
    inSymSeed: Buffer,
  ): Promise<Buffer> {
    const parameters = new TpmWriter()
      .sized(encryptionKey)
      .sized(objectPublic)
      .sized(duplicate)
      .sized(inSymSeed)
      .u16(TPM_ALG.AES)
      .u16(encryptionKey.length * 8)
      .u16(TPM_ALG.CFB)
      .toBuffer();
    const response = await this.engine.execute("Import", {
      handles: [parentHandle],
      authorizations: [PASSWORD],
      parameters,
    });
    return response.parameters.sized();
  }

  /** Part 3 §12.2 TPM2_Load. Returns the transient handle. */
  async load(parentHandle: number, inPrivate: Buffer, inPublic: Buffer): Promise<number> {
    const response = await this.engine.execute("Load", {
      handles: [parentHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().sized(inPrivate).sized(inPublic).toBuffer(),
      responseHandleCount: 1,
    });
    return response.handles[0] ?? 0;
  }

  /** Part 3 §15.5 TPM2_HMAC */
  async hmac(keyHandle: number, data: Buffer, hashAlg: number): Promise<Buffer> {
    const response = await this.engine.execute("HMAC", {
      handles: [keyHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().sized(data).u16(hashAlg).toBuffer(),
    });
    return response.parameters.sized();
  }

  /** Part 3 §17.2 TPM2_HMAC_Start. Returns the sequence handle. */
  async hmacStart(keyHandle: number, hashAlg: number): Promise<number> {
    const response = await this.engine.execute("HMAC_Start", {
      handles: [keyHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().sized(EMPTY).u16(hashAlg).toBuffer(),
      responseHandleCount: 1,
    });
    return response.handles[0] ?? 0;
  }

  /** Part 3 §17.4 TPM2_SequenceUpdate */
  async sequenceUpdate(sequenceHandle: number, data: Buffer): Promise<void> {
    await this.engine.execute("SequenceUpdate", {
      handles: [sequenceHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().sized(data).toBuffer(),
    });
  }

  /** Part 3 §17.5 TPM2_SequenceComplete. Returns the digest (here: the HMAC). */
  async sequenceComplete(sequenceHandle: number, data: Buffer): Promise<Buffer> {
    const response = await this.engine.execute("SequenceComplete", {
      handles: [sequenceHandle],
      authorizations: [PASSWORD],
      parameters: new TpmWriter().sized(data).u32(TPM_RH.NULL).toBuffer(),
    });
    return response.parameters.sized();
  }

  /** Part 3 §28.4 TPM2_FlushContext (the handle travels as a parameter). */
  async flushContext(handle: number): Promise<void> {
    await this.engine.execute("FlushContext", { parameters: new TpmWriter().u32(handle).toBuffer() });
  }

  /** Part 3 §30.2 TPM2_GetCapability for one TPM property. */
  async getProperty(property: number): Promise<number> {
    const response = await this.engine.execute("GetCapability", {
      parameters: new TpmWriter().u32(TPM_CAP_TPM_PROPERTIES).u32(property).u32(1).toBuffer(),
    });
    const reader = response.parameters;
    reader.u8(); // moreData
    reader.u32(); // capability
    const count = reader.u32();
    for (let i = 0; i < count; i++) {
      const tag = reader.u32();
      const value = reader.u32();
      if (tag === property) return value;
    }
    throw new TpmError("TPM_PROTOCOL", `TPM did not report property 0x${property.toString(16)}`);
  }

  /**
   * Part 3 §30.2 TPM2_GetCapability for `count` TPM properties from `first` on. The TPM may answer fewer
   * (moreData set) or skip properties it does not have: the map holds what it reported.
   */
  async getProperties(first: number, count: number): Promise<Map<number, number>> {
    const response = await this.engine.execute("GetCapability", {
      parameters: new TpmWriter().u32(TPM_CAP_TPM_PROPERTIES).u32(first).u32(count).toBuffer(),
    });
    const reader = response.parameters;
    reader.u8(); // moreData
    reader.u32(); // capability
    const reported = reader.u32();
    const properties = new Map<number, number>();
    for (let i = 0; i < reported; i++) {
      const tag = reader.u32();
      properties.set(tag, reader.u32());
    }
    return properties;
  }

  /** Part 3 §16.1 TPM2_GetRandom */
  async getRandom(bytes: number): Promise<Buffer> {
    const response = await this.engine.execute("GetRandom", {
      parameters: new TpmWriter().u16(bytes).toBuffer(),
    });
    return response.parameters.sized();
  }
}
