import { EventEmitter } from "node:events";
import { buildSasToken } from "../common/sas.js";
import { settle, type Callback } from "../common/callback.js";

/** azure-iot-common's AuthenticationType.Token: the SDK's AMQP transport then listens for new tokens. */
const AUTHENTICATION_TYPE_TOKEN = 1;

export interface TpmSigner {
  signWithIdentity(data: Buffer): Promise<Buffer>;
}

export interface TpmDeviceCredentials {
  host: string;
  deviceId: string;
  sharedAccessSignature?: string;
}

export interface TokenLifetime {
  /** How long each token is valid. Default 3600 s, as the SDK. */
  tokenValidTimeInSeconds: number;
  /** How long before expiry a new token is made. Default 900 s, as the SDK. */
  tokenRenewalMarginInSeconds: number;
}

const RETRY_AFTER_FAILED_RENEWAL_MS = 5_000;

/**
 * The authentication provider `azure-iot-device`'s `Client.fromAuthenticationProvider` takes for a TPM device:
 * SAS tokens for `{hub}/devices/{deviceId}` signed inside the TPM, renewed before they expire.
 *
 * Events: `newTokenAvailable` (credentials) after each renewal; `error` only when a listener is attached
 * (the SDK attaches none, and an unheard `error` event would end the process). A failed renewal is retried.
 */
export class TpmAuthenticationProvider extends EventEmitter {
  readonly type = AUTHENTICATION_TYPE_TOKEN;
  readonly automaticRenewal = true;
  private readonly credentials: TpmDeviceCredentials;
  private lifetime: TokenLifetime = { tokenValidTimeInSeconds: 3600, tokenRenewalMarginInSeconds: 900 };
  private expiry = 0;
  private renewalTimer: NodeJS.Timeout | undefined;
  private pending: Promise<TpmDeviceCredentials> | undefined;
  private stopped = false;

  constructor(
    credentials: { host: string; deviceId: string },
    private readonly signer: TpmSigner,
    lifetime?: Partial<TokenLifetime>,
  ) {
    super();
    if (!credentials.host) throw new TypeError("host (the IoT hub host name) is required");
    if (!credentials.deviceId) throw new TypeError("deviceId is required");
    this.credentials = { host: credentials.host, deviceId: credentials.deviceId };
    if (lifetime)
      this.setTokenRenewalValues(lifetime.tokenValidTimeInSeconds, lifetime.tokenRenewalMarginInSeconds);
  }

  static fromTpmSecurityClient(
    deviceId: string,
    iotHubHostName: string,
    signer: TpmSigner,
  ): TpmAuthenticationProvider {
    return new TpmAuthenticationProvider({ host: iotHubHostName, deviceId }, signer);
  }

  /** The hub credentials with a valid token; makes one (and starts renewal) when there is none. */
  getDeviceCredentials(): Promise<TpmDeviceCredentials>;
  getDeviceCredentials(callback: Callback<TpmDeviceCredentials>): void;
  getDeviceCredentials(callback?: Callback<TpmDeviceCredentials>): Promise<TpmDeviceCredentials> | void {
    this.stopped = false;
    const now = Math.floor(Date.now() / 1000);
    const secondsToRenewal = this.expiry - now - this.lifetime.tokenRenewalMarginInSeconds;
    let fresh: Promise<TpmDeviceCredentials>;
    if (this.credentials.sharedAccessSignature && secondsToRenewal > 0) {
      // after stop() (a reconnect) the token is still good, but its renewal was cancelled: schedule it again
      if (!this.renewalTimer) this.scheduleRenewal(secondsToRenewal * 1000);
      fresh = Promise.resolve({ ...this.credentials });
    } else {
      fresh = this.renew();
    }
    if (!callback) return fresh;
    settle(fresh, callback);
  }

  setTokenRenewalValues(tokenValidTimeInSeconds?: number, tokenRenewalMarginInSeconds?: number): void {
    const valid = tokenValidTimeInSeconds ?? this.lifetime.tokenValidTimeInSeconds;
    const margin = tokenRenewalMarginInSeconds ?? this.lifetime.tokenRenewalMarginInSeconds;
    if (!(valid > 0) || !(margin >= 0) || margin >= valid) {
      throw new RangeError("the renewal margin must be shorter than the token lifetime");
    }
    this.lifetime = { tokenValidTimeInSeconds: valid, tokenRenewalMarginInSeconds: margin };
    if (this.renewalTimer) this.scheduleRenewal((valid - margin) * 1000);
  }

  /** The TPM makes the tokens: a token from outside cannot be used. */
  updateSharedAccessSignature(_token: string): void {
    throw new Error("a TPM device signs its own tokens; updateSharedAccessSignature is not supported");
  }

  /** Stops renewing (the SDK calls this when it disconnects). */
  stop(): void {
    this.stopped = true;
    if (this.renewalTimer) clearTimeout(this.renewalTimer);
    this.renewalTimer = undefined;
  }

  private renew(): Promise<TpmDeviceCredentials> {
    this.pending ??= this.makeToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async makeToken(): Promise<TpmDeviceCredentials> {
    const expiry = Math.floor(Date.now() / 1000) + this.lifetime.tokenValidTimeInSeconds;
    const resource = `${this.credentials.host}/devices/${this.credentials.deviceId}`;
    const token = await buildSasToken(resource, expiry, (data) => this.signer.signWithIdentity(data));
    this.credentials.sharedAccessSignature = token;
    this.expiry = expiry;
    if (!this.stopped) {
      const { tokenValidTimeInSeconds, tokenRenewalMarginInSeconds } = this.lifetime;
      this.scheduleRenewal((tokenValidTimeInSeconds - tokenRenewalMarginInSeconds) * 1000);
    }
    return { ...this.credentials };
  }

  private scheduleRenewal(delayMs: number): void {
    if (this.renewalTimer) clearTimeout(this.renewalTimer);
    this.renewalTimer = setTimeout(() => this.renewInBackground(), delayMs);
    this.renewalTimer.unref();
  }

  private renewInBackground(): void {
    this.renewalTimer = undefined;
    if (this.stopped) return;
    this.renew().then(
      (credentials) => this.emit("newTokenAvailable", credentials),
      (error: unknown) => {
        if (this.listenerCount("error") > 0) this.emit("error", error);
        const msLeft = this.expiry * 1000 - Date.now();
        if (!this.stopped)
          this.scheduleRenewal(Math.max(100, Math.min(RETRY_AFTER_FAILED_RENEWAL_MS, msLeft / 2)));
      },
    );
  }
}
