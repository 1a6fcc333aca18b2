// Server-side SASL mechanisms of the DPS AMQP endpoint (rhea's mechanism contract: start(initial, hostname)
// and step(response) return a challenge or undefined; `outcome` true/false ends the exchange).
//   PLAIN: symmetric key devices; username "{idScope}/registrations/{registrationId}", password = SAS token.
//   TPM:   the DPS custom mechanism, docs/dps-protocol.md §3.5 (EK in, SRK request, activation blob out in
//          400-byte segments, TPM-signed SAS token back).
//   ANONYMOUS: offered so rhea also accepts clients that send no SASL header at all (X.509 devices).
import { randomBytes } from "node:crypto";
import { buildActivationBlob } from "../tpm-activation.js";
import { DpsError } from "./errors.js";
import type { DeviceIdentity, RegistrationService } from "./registration-service.js";

export interface DpsSaslMechanism {
  outcome: boolean | undefined;
  username: string | undefined;
  /** The device the exchange authenticated (PLAIN, TPM); undefined for ANONYMOUS. */
  identity: DeviceIdentity | undefined;
  start(initialResponse: Buffer | undefined, hostname: string | undefined): Buffer | undefined;
  step(response: Buffer | undefined): Buffer | undefined;
}

const REGISTRATION_ADDRESS = /^([^/]+)\/registrations\/([^/]+)$/;
/** The C SDK prefixes its link addresses with the host it connected to (docs/dps-protocol.md §3.3). */
const AMQPS_PREFIX = /^amqps:\/\/[^/]+\//i;

/** "{idScope}/registrations/{registrationId}" for this DPS, or undefined. */
export function parseRegistrationAddress(
  service: RegistrationService,
  address: string | undefined,
): { registrationId: string } | undefined {
  const match = REGISTRATION_ADDRESS.exec(address ?? "");
  if (!match || !service.isOwnScope(match[1])) return undefined;
  return { registrationId: match[2] };
}

/**
 * A register link's address: the Node SDK's "{idScope}/registrations/{registrationId}" or the C SDK's
 * "amqps://{host}/{idScope}/registrations/{registrationId}". The host is the name the device dialled (the
 * global endpoint or a custom one), so only the scope is checked.
 */
export function parseRegistrationLinkAddress(
  service: RegistrationService,
  address: string | undefined,
): { registrationId: string } | undefined {
  return parseRegistrationAddress(service, (address ?? "").replace(AMQPS_PREFIX, ""));
}

type Log = (message: string) => void;

export class PlainMechanism implements DpsSaslMechanism {
  outcome: boolean | undefined;
  username: string | undefined;
  identity: DeviceIdentity | undefined;

  constructor(
    private readonly service: RegistrationService,
    private readonly log: Log,
  ) {}

  start(initialResponse: Buffer | undefined): undefined {
    // RFC 4616: [authzid] NUL authcid NUL passwd
    const parts = Buffer.from(initialResponse ?? [])
      .toString("utf8")
      .split("\0");
    const address = parseRegistrationAddress(this.service, parts[1]);
    if (parts.length !== 3 || !address) {
      this.log("SASL PLAIN refused: the username is not a registration of this scope");
      this.outcome = false;
      return undefined;
    }
    try {
      this.identity = this.service.authenticateSymmetricKey(address.registrationId, parts[2]);
      this.username = parts[1];
      this.outcome = true;
    } catch (error) {
      this.log(`SASL PLAIN refused for ${address.registrationId}: ${describe(error)}`);
      this.outcome = false;
    }
    return undefined;
  }

  step(): undefined {
    this.outcome = false;
    return undefined;
  }
}

export class AnonymousMechanism implements DpsSaslMechanism {
  outcome: boolean | undefined;
  username: string | undefined;
  identity: DeviceIdentity | undefined;
  start(): undefined {
    // Identity comes from the TLS client certificate when the links attach.
    this.outcome = true;
    this.username = "anonymous";
    return undefined;
  }
  step(): undefined {
    this.outcome = false;
    return undefined;
  }
}

// docs/dps-protocol.md §3.5: 400 data bytes per segment (SASL frames must fit 512 bytes before negotiation),
// control byte 0x80|seq for an interim segment and 0xC0|seq for the last one.
const SEGMENT_BYTES = 400;
const INTERIM_SEGMENT = 0x80;
const FINAL_SEGMENT = 0xc0;

type TpmStage = "srk" | "segments" | "token" | "done";

export class TpmMechanism implements DpsSaslMechanism {
  outcome: boolean | undefined;
  username: string | undefined;
  identity: DeviceIdentity | undefined;
  private stage: TpmStage = "done";
  private registrationId = "";
  private endorsementKey: Buffer = Buffer.alloc(0);
  private storageRootKey: Buffer = Buffer.alloc(0);
  private sessionKey: Buffer = Buffer.alloc(0);
  private segments: Buffer[] = [];
  private nextSegment = 0;
  private deferredRefusal: string | undefined;

  constructor(
    private readonly service: RegistrationService,
    private readonly log: Log,
  ) {}

  /** initial-response = 0x00 idScope 0x00 registrationId 0x00 EK(TPM2B_PUBLIC) */
  start(initialResponse: Buffer | undefined): Buffer | undefined {
    const data = Buffer.from(initialResponse ?? []);
    const scopeEnd = data.indexOf(0, 1);
    const idEnd = scopeEnd < 0 ? -1 : data.indexOf(0, scopeEnd + 1);
    if (data[0] !== 0 || scopeEnd < 0 || idEnd < 0 || idEnd + 1 >= data.length)
      return this.refuse("malformed TPM init");
    const idScope = data.toString("utf8", 1, scopeEnd);
    this.registrationId = data.toString("utf8", scopeEnd + 1, idEnd);
    this.endorsementKey = data.subarray(idEnd + 1);
    if (!this.service.isOwnScope(idScope)) return this.refuse("unknown id scope");
    this.stage = "srk";
    return Buffer.from([0]); // one byte: "send your SRK"
  }

  step(response: Buffer | undefined): Buffer | undefined {
    const data = Buffer.from(response ?? []);
    if (data[0] !== 0) return this.refuse("malformed TPM response");
    switch (this.stage) {
      case "srk": {
        this.storageRootKey = data.subarray(1);
        let activationBlob: Buffer;
        try {
          const challenge = this.service.issueTpmChallenge(
            this.registrationId,
            this.endorsementKey,
            this.storageRootKey,
          );
          this.sessionKey = challenge.sessionKey;
          activationBlob = challenge.activationBlob;
        } catch (error) {
          if (!(error instanceof DpsError) || error.status !== 401) return this.refuse(describe(error));
          // The Node SDK never reports a SASL failure that arrives before its TPM has answered a challenge
          // (it waits forever), so an unknown device gets a challenge for its own EK and the refusal comes
          // as the outcome after its signed token. No key is granted: the blob's key is thrown away.
          try {
            activationBlob = buildActivationBlob(this.endorsementKey, this.storageRootKey, randomBytes(32));
          } catch {
            return this.refuse(error.message);
          }
          this.deferredRefusal = error.message;
        }
        this.segments = [];
        for (let at = 0; at < activationBlob.length; at += SEGMENT_BYTES) {
          this.segments.push(activationBlob.subarray(at, at + SEGMENT_BYTES));
        }
        this.stage = "segments";
        return this.sendSegment();
      }
      case "segments":
        return this.sendSegment();
      case "token":
        if (this.deferredRefusal !== undefined) return this.refuse(this.deferredRefusal);
        try {
          this.identity = this.service.authenticateTpm(
            this.registrationId,
            data.subarray(1).toString("utf8"),
            {
              sessionKey: this.sessionKey,
              endorsementKey: this.endorsementKey,
              storageRootKey: this.storageRootKey,
            },
          );
        } catch (error) {
          return this.refuse(describe(error));
        }
        this.stage = "done";
        this.username = `${this.service.idScope}/registrations/${this.registrationId}`;
        this.outcome = true;
        return undefined;
      default:
        return this.refuse("unexpected TPM response");
    }
  }

  private sendSegment(): Buffer {
    const index = this.nextSegment++;
    const last = index === this.segments.length - 1;
    if (last) this.stage = "token";
    const control = (last ? FINAL_SEGMENT : INTERIM_SEGMENT) | (index & 0x03);
    return Buffer.concat([Buffer.from([control]), this.segments[index]]);
  }

  private refuse(reason: string): undefined {
    this.log(`SASL TPM refused${this.registrationId ? ` for ${this.registrationId}` : ""}: ${reason}`);
    this.stage = "done";
    this.outcome = false;
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof DpsError ? error.message : "internal error";
}
