// TpmAuthenticationProvider's token life cycle with an HMAC signer in place of the TPM (pure logic: the
// TPM signing itself is tested against swtpm in test/integration/tpm-authentication.test.ts).
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, it, mock } from "node:test";
import { parseSasToken, sasSignatureMatches } from "../../src/common/sas.js";
import {
  TpmAuthenticationProvider,
  type TpmDeviceCredentials,
} from "../../src/tpm/authentication-provider.js";

const START_MS = 1_900_000_000_000;
const START_S = START_MS / 1000;

/** Signs like the TPM's identity key would, counts its calls and can be told to fail or to wait. */
class HmacSigner {
  readonly key = randomBytes(32);
  calls = 0;
  failWith: Error | undefined;
  hold: Promise<void> | undefined;
  async signWithIdentity(data: Buffer): Promise<Buffer> {
    this.calls++;
    if (this.hold) await this.hold;
    if (this.failWith) throw this.failWith;
    return createHmac("sha256", this.key).update(data).digest();
  }
}

const fieldsOf = (credentials: TpmDeviceCredentials) => {
  const fields = parseSasToken(credentials.sharedAccessSignature ?? "");
  assert.ok(fields, "a well-formed SAS token");
  return fields;
};

/** Lets the promise callbacks queued by a timer run (the signer and the token are asynchronous). */
const settleMicrotasks = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** A provider whose tokens live 100 s and are renewed 30 s before the end, with the tokens it announces. */
function renewingProvider(): {
  signer: HmacSigner;
  provider: TpmAuthenticationProvider;
  announced: TpmDeviceCredentials[];
} {
  const signer = new HmacSigner();
  const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer, {
    tokenValidTimeInSeconds: 100,
    tokenRenewalMarginInSeconds: 30,
  });
  const announced: TpmDeviceCredentials[] = [];
  provider.on("newTokenAvailable", (credentials: TpmDeviceCredentials) => announced.push(credentials));
  return { signer, provider, announced };
}

describe("TPM authentication provider (token life cycle)", () => {
  beforeEach(() => {
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: START_MS });
  });
  afterEach(() => {
    mock.timers.reset();
  });

  it("needs a hub host and a device id, and says which is missing", () => {
    const signer = new HmacSigner();
    assert.throws(
      () => new TpmAuthenticationProvider({ host: "", deviceId: "d" }, signer),
      (error: unknown) =>
        error instanceof TypeError && /^host \(the IoT hub host name\) is required$/.test(error.message),
    );
    assert.throws(
      () => new TpmAuthenticationProvider({ host: "h", deviceId: "" }, signer),
      (error: unknown) => error instanceof TypeError && /^deviceId is required$/.test(error.message),
    );
  });

  it("is a token provider that renews itself, as the SDK's AMQP transport expects", () => {
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, new HmacSigner());
    assert.equal(provider.type, 1); // AuthenticationType.Token
    assert.equal(provider.automaticRenewal, true);
  });

  it("signs one token for the device's resource, valid one hour, and hands it out until renewal is due", async () => {
    const signer = new HmacSigner();
    const provider = TpmAuthenticationProvider.fromTpmSecurityClient("gw-1", "hub.example.net", signer);
    try {
      const first = await provider.getDeviceCredentials();
      assert.equal(first.host, "hub.example.net");
      assert.equal(first.deviceId, "gw-1");
      const fields = fieldsOf(first);
      assert.equal(fields.resource, "hub.example.net/devices/gw-1");
      assert.equal(fields.expiry, START_S + 3600);
      assert.ok(sasSignatureMatches(fields, signer.key));

      // 2699 s later 901 s are left, more than the 900 s margin: the same token, not signed again
      mock.timers.setTime(START_MS + 2699_000);
      const cached = await provider.getDeviceCredentials();
      assert.equal(cached.sharedAccessSignature, first.sharedAccessSignature);
      assert.equal(signer.calls, 1);

      // exactly 900 s left: inside the margin, a new token
      mock.timers.setTime(START_MS + 2700_000);
      const renewed = await provider.getDeviceCredentials();
      assert.equal(signer.calls, 2);
      assert.equal(fieldsOf(renewed).expiry, START_S + 2700 + 3600);
    } finally {
      provider.stop();
    }
  });

  it("hands out copies: changing one does not change the next", async () => {
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, new HmacSigner());
    try {
      const first = await provider.getDeviceCredentials();
      const token = first.sharedAccessSignature;
      first.deviceId = "changed";
      first.sharedAccessSignature = "changed";
      const second = await provider.getDeviceCredentials();
      assert.equal(second.deviceId, "d");
      assert.equal(second.sharedAccessSignature, token);
      assert.notEqual(second, first);
    } finally {
      provider.stop();
    }
  });

  it("signs once for calls that arrive while a token is being made", async () => {
    const signer = new HmacSigner();
    let release!: () => void;
    signer.hold = new Promise<void>((resolve) => (release = resolve));
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer);
    try {
      const a = provider.getDeviceCredentials();
      const b = provider.getDeviceCredentials();
      release();
      const [ca, cb] = await Promise.all([a, b]);
      assert.equal(signer.calls, 1);
      assert.equal(ca.sharedAccessSignature, cb.sharedAccessSignature);
      // once made, a later renewal signs again (the shared attempt is not kept forever)
      signer.hold = undefined;
      mock.timers.setTime(START_MS + 3000_000);
      await provider.getDeviceCredentials();
      assert.equal(signer.calls, 2);
    } finally {
      provider.stop();
    }
  });

  it("answers a callback with the credentials, or with the signer's error", async () => {
    const signer = new HmacSigner();
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer);
    try {
      const credentials = await new Promise<TpmDeviceCredentials | undefined>((resolve, reject) =>
        provider.getDeviceCredentials((error, value) => (error ? reject(error) : resolve(value))),
      );
      assert.equal(credentials?.deviceId, "d");
      assert.ok(sasSignatureMatches(fieldsOf(credentials), signer.key));

      const failing = new HmacSigner();
      failing.failWith = new Error("TPM gone");
      const other = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, failing);
      const error = await new Promise<Error | null>((resolve) =>
        other.getDeviceCredentials((err) => resolve(err)),
      );
      assert.equal(error?.message, "TPM gone");
      other.stop();
    } finally {
      provider.stop();
    }
  });

  it("renews in the background when the margin is reached and announces the new token", async () => {
    const { signer, provider, announced } = renewingProvider();
    try {
      const first = await provider.getDeviceCredentials();
      assert.equal(fieldsOf(first).expiry, START_S + 100);
      mock.timers.tick(69_999);
      await settleMicrotasks();
      assert.equal(announced.length, 0, "not before valid - margin = 70 s");
      mock.timers.tick(1);
      await settleMicrotasks();
      assert.equal(announced.length, 1);
      assert.equal(fieldsOf(announced[0]).expiry, START_S + 70 + 100);
      assert.ok(sasSignatureMatches(fieldsOf(announced[0]), signer.key));
      // and again 70 s after that
      mock.timers.tick(70_000);
      await settleMicrotasks();
      assert.equal(announced.length, 2);
    } finally {
      provider.stop();
    }
  });

  it("stops renewing after stop(), and starts again with the next request", async () => {
    const { signer, provider, announced } = renewingProvider();
    try {
      await provider.getDeviceCredentials();
      provider.stop();
      mock.timers.tick(200_000);
      await settleMicrotasks();
      assert.equal(announced.length, 0);
      assert.equal(signer.calls, 1);

      await provider.getDeviceCredentials(); // expired: a new token, and renewal again
      assert.equal(signer.calls, 2);
      mock.timers.tick(70_000);
      await settleMicrotasks();
      assert.equal(announced.length, 1);
    } finally {
      provider.stop();
    }
  });

  it("renews on time again after stop() when the next request is served from the still valid token", async () => {
    const { signer, provider, announced } = renewingProvider();
    try {
      const first = await provider.getDeviceCredentials();
      mock.timers.tick(10_000);
      provider.stop(); // the SDK disconnects...
      mock.timers.tick(10_000);
      const again = await provider.getDeviceCredentials(); // ...and reconnects 20 s after the token was made
      assert.equal(again.sharedAccessSignature, first.sharedAccessSignature);
      assert.equal(signer.calls, 1);
      mock.timers.tick(49_999);
      await settleMicrotasks();
      assert.equal(announced.length, 0, "not before the margin is reached, 70 s after the token was made");
      mock.timers.tick(1);
      await settleMicrotasks();
      assert.equal(announced.length, 1, "renewed once, on the token's own schedule");
      assert.equal(signer.calls, 2);
    } finally {
      provider.stop();
    }
  });

  it("does not move an armed renewal when a request is served from the token", async () => {
    const { provider, announced } = renewingProvider();
    try {
      await provider.getDeviceCredentials(); // renewal armed for 70 s
      mock.timers.tick(20_500);
      await provider.getDeviceCredentials(); // within the same second count, half a second later
      mock.timers.tick(49_500);
      await settleMicrotasks();
      assert.equal(announced.length, 1, "renewed at 70 s, as armed");
    } finally {
      provider.stop();
    }
  });

  it("does not retry behind the caller's back after stop(), even once the next request failed", async () => {
    const signer = new HmacSigner();
    let release!: () => void;
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer, {
      tokenValidTimeInSeconds: 100,
      tokenRenewalMarginInSeconds: 30,
    });
    const announced: unknown[] = [];
    provider.on("newTokenAvailable", (credentials) => announced.push(credentials));
    try {
      await provider.getDeviceCredentials();
      signer.failWith = new Error("TPM busy");
      signer.hold = new Promise<void>((resolve) => (release = resolve));
      mock.timers.tick(70_000); // the background renewal starts...
      await settleMicrotasks();
      provider.stop(); // ...the SDK disconnects...
      release(); // ...and the renewal fails
      await settleMicrotasks();
      signer.hold = undefined;
      await assert.rejects(provider.getDeviceCredentials(), /TPM busy/); // the caller gets the failure
      signer.failWith = undefined;
      mock.timers.tick(10_000);
      await settleMicrotasks();
      assert.equal(signer.calls, 3);
      assert.equal(announced.length, 0);
    } finally {
      provider.stop();
    }
  });

  it("schedules no renewal for a token that was being made when it was stopped", async () => {
    const signer = new HmacSigner();
    let release!: () => void;
    signer.hold = new Promise<void>((resolve) => (release = resolve));
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer, {
      tokenValidTimeInSeconds: 100,
      tokenRenewalMarginInSeconds: 30,
    });
    const announced: unknown[] = [];
    provider.on("newTokenAvailable", (credentials) => announced.push(credentials));
    const pending = provider.getDeviceCredentials();
    provider.stop();
    release();
    await pending;
    mock.timers.tick(200_000);
    await settleMicrotasks();
    assert.equal(announced.length, 0);
    assert.equal(signer.calls, 1);
  });

  it("retries a failed background renewal after half the time left, at most 5 s", async () => {
    const { signer, provider } = renewingProvider();
    const errors: unknown[] = [];
    const announced: unknown[] = [];
    provider.on("error", (error) => errors.push(error));
    provider.on("newTokenAvailable", (credentials) => announced.push(credentials));
    try {
      await provider.getDeviceCredentials(); // expires at START + 100 s
      signer.failWith = new Error("TPM busy");
      mock.timers.tick(70_000); // renewal due and failing: 30 s left, so the retry comes in 5 s, not 15 s
      await settleMicrotasks();
      assert.equal(signer.calls, 2);
      assert.equal(errors.length, 1);
      assert.equal((errors[0] as Error).message, "TPM busy");
      mock.timers.tick(4_999);
      await settleMicrotasks();
      assert.equal(signer.calls, 2, "no retry before 5 s");
      signer.failWith = undefined;
      mock.timers.tick(1);
      await settleMicrotasks();
      assert.equal(signer.calls, 3, "retried after 5 s");
      assert.equal(announced.length, 1, "the retry's token is announced");
      assert.equal(errors.length, 1);
    } finally {
      provider.stop();
    }
  });

  it("retries sooner when less time is left: half of it, but not sooner than 0.1 s", async () => {
    const signer = new HmacSigner();
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer, {
      tokenValidTimeInSeconds: 10,
      tokenRenewalMarginInSeconds: 6,
    });
    try {
      await provider.getDeviceCredentials(); // expires at START + 10 s, renewal at 4 s
      signer.failWith = new Error("TPM busy");
      mock.timers.tick(4_000); // 6 s left: retry in 3 s
      await settleMicrotasks();
      assert.equal(signer.calls, 2);
      mock.timers.tick(2_999);
      await settleMicrotasks();
      assert.equal(signer.calls, 2, "no retry before 3 s");
      mock.timers.tick(1); // at 7 s, 3 s left: retry in 1.5 s
      await settleMicrotasks();
      assert.equal(signer.calls, 3);
      mock.timers.tick(1_500); // at 8.5 s, 1.5 s left: in 0.75 s
      await settleMicrotasks();
      assert.equal(signer.calls, 4);
      mock.timers.tick(750); // at 9.25 s: in 0.375 s
      await settleMicrotasks();
      mock.timers.tick(375); // at 9.625 s: in 0.1875 s
      await settleMicrotasks();
      mock.timers.tick(188); // at 9.813 s, 0.187 s left: half would be 93.5 ms, the floor makes it 100 ms
      await settleMicrotasks();
      assert.equal(signer.calls, 7);
      mock.timers.tick(99);
      await settleMicrotasks();
      assert.equal(signer.calls, 7, "not sooner than 0.1 s");
      mock.timers.tick(1);
      await settleMicrotasks();
      assert.equal(signer.calls, 8);
    } finally {
      provider.stop();
    }
  });

  it("keeps retrying without an error listener (an unheard error event would end the process)", async () => {
    const { signer, provider } = renewingProvider();
    try {
      await provider.getDeviceCredentials();
      signer.failWith = new Error("TPM busy");
      mock.timers.tick(70_000);
      await settleMicrotasks();
      mock.timers.tick(5_000);
      await settleMicrotasks();
      assert.equal(signer.calls, 3);
    } finally {
      provider.stop();
    }
  });

  it("stops retrying once stopped during a failing renewal", async () => {
    const signer = new HmacSigner();
    let release!: () => void;
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer, {
      tokenValidTimeInSeconds: 100,
      tokenRenewalMarginInSeconds: 30,
    });
    await provider.getDeviceCredentials();
    signer.failWith = new Error("TPM busy");
    signer.hold = new Promise<void>((resolve) => (release = resolve));
    mock.timers.tick(70_000);
    await settleMicrotasks();
    provider.stop();
    release();
    await settleMicrotasks();
    mock.timers.tick(100_000);
    await settleMicrotasks();
    assert.equal(signer.calls, 2);
  });

  it("checks new lifetimes and moves a scheduled renewal to the new time", async () => {
    const signer = new HmacSigner();
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, signer);
    const announced: unknown[] = [];
    provider.on("newTokenAvailable", (credentials) => announced.push(credentials));
    try {
      for (const [valid, margin] of [
        [0, 0],
        [-1, -2],
        [10, -1],
        [10, 10],
        [10, 11],
        [Number.NaN, 1],
        [10, Number.NaN],
      ] as const) {
        assert.throws(
          () => provider.setTokenRenewalValues(valid, margin),
          (error: unknown) =>
            error instanceof RangeError &&
            error.message === "the renewal margin must be shorter than the token lifetime",
          `${valid}, ${margin}`,
        );
      }
      provider.setTokenRenewalValues(10, 0); // a zero margin is allowed
      assert.throws(
        () => provider.setTokenRenewalValues(undefined, 10),
        RangeError,
        "keeps the valid time 10",
      );
      assert.throws(() => provider.setTokenRenewalValues(0), RangeError, "keeps the margin 0");
      provider.setTokenRenewalValues(undefined, 4); // 10 s valid, 4 s margin
      // no timer yet: nothing scheduled by the change alone
      mock.timers.tick(60_000);
      await settleMicrotasks();
      assert.equal(signer.calls, 0);

      const first = await provider.getDeviceCredentials();
      assert.equal(fieldsOf(first).expiry, START_S + 60 + 10);
      provider.setTokenRenewalValues(20, 15); // renewal now due 5 s from here, not 6 s
      mock.timers.tick(4_999);
      await settleMicrotasks();
      assert.equal(announced.length, 0);
      mock.timers.tick(1);
      await settleMicrotasks();
      assert.equal(announced.length, 1);
      assert.equal(fieldsOf(announced[0] as TpmDeviceCredentials).expiry, START_S + 65 + 20);
      mock.timers.tick(1_000); // the renewal first planned for 6 s was moved, not doubled
      await settleMicrotasks();
      assert.equal(announced.length, 1);
    } finally {
      provider.stop();
    }
  });

  it("takes no token from outside", () => {
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, new HmacSigner());
    assert.throws(
      () => provider.updateSharedAccessSignature("SharedAccessSignature sr=x&sig=y&se=1"),
      (error: unknown) =>
        error instanceof Error &&
        error.message === "a TPM device signs its own tokens; updateSharedAccessSignature is not supported",
    );
  });
});
