import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  SharedAccessSignature,
  encodeUriComponentStrict as sdkEncodeUriComponentStrict,
} from "azure-iot-common";
import base32Encode from "base32-encode";
import {
  buildSasToken,
  encodeUriComponentStrict,
  hmacSha256,
  parseSasToken,
  sasSignatureMatches,
} from "../../src/common/sas.js";
import { base32, registrationIdFromEndorsementKey } from "../../src/tpm/registration-id.js";
import { createHash } from "node:crypto";

describe("registration id", () => {
  it("encodes the RFC 4648 test vectors in lowercase without padding", () => {
    const vectors: Array<[string, string]> = [
      ["", ""],
      ["f", "my"],
      ["fo", "mzxq"],
      ["foo", "mzxw6"],
      ["foob", "mzxw6yq"],
      ["fooba", "mzxw6ytb"],
      ["foobar", "mzxw6ytboi"],
    ];
    for (const [input, expected] of vectors) assert.equal(base32(Buffer.from(input)), expected);
  });

  it("derives the same id from an EK as the Azure SDK's formula", () => {
    for (let i = 0; i < 20; i++) {
      const ek = randomBytes(316);
      const sdkStyle = base32Encode(createHash("sha256").update(ek).digest(), "RFC4648")
        .toLowerCase()
        .replace(/=/g, "");
      assert.equal(registrationIdFromEndorsementKey(ek), sdkStyle);
    }
  });
});

describe("SAS tokens", () => {
  const key = randomBytes(32);

  it("builds the same token as azure-iot-common for the same key, resource and expiry", async () => {
    const resource = "my-hub.azure-devices.net/devices/dev (1)!";
    const expiry = 1_900_000_000;
    const ours = await buildSasToken(resource, expiry, (data) => hmacSha256(key, data));
    const sdk = SharedAccessSignature.create(
      encodeUriComponentStrict(resource),
      "",
      key.toString("base64"),
      expiry,
    ).toString();
    assert.equal(ours, sdk.replace("&skn=", ""));
  });

  it("parses a token back and checks its signature with the right key only", async () => {
    const token = await buildSasToken(
      "0ne00000001/registrations/dev-1",
      1_900_000_000,
      (d) => hmacSha256(key, d),
      "registration",
    );
    const fields = parseSasToken(token);
    assert.ok(fields);
    assert.equal(fields.resource, "0ne00000001/registrations/dev-1");
    assert.equal(fields.expiry, 1_900_000_000);
    assert.equal(fields.keyName, "registration");
    assert.equal(sasSignatureMatches(fields, key), true);
    assert.equal(sasSignatureMatches(fields, randomBytes(32)), false);
  });

  it("rejects malformed tokens", () => {
    for (const bad of [
      "",
      "Bearer abc",
      "SharedAccessSignature sr=a&sig=b",
      "SharedAccessSignature sr=a&sig=b&se=soon",
      "SharedAccessSignature sr=%E0%A4%A&sig=b&se=1",
    ]) {
      assert.equal(parseSasToken(bad), undefined, bad);
    }
  });

  it("encodes a resource exactly as azure-iot-common does, the characters encodeURIComponent keeps included", () => {
    for (const value of ["dev!(1)*'", "hub/devices/a b", "0ne00000001/registrations/x.y_z~-", "é%&="]) {
      assert.equal(encodeUriComponentStrict(value), sdkEncodeUriComponentStrict(value), value);
    }
    assert.equal(encodeUriComponentStrict("!'()*"), "%21%27%28%29%2a");
  });

  it("reads only a whole token: nothing before the scheme, nothing after a line break", async () => {
    const token = await buildSasToken("hub/devices/d1", 1_900_000_000, (d) => hmacSha256(key, d));
    assert.equal(parseSasToken(`  ${token}  `)?.resource, "hub/devices/d1", "surrounding blanks are trimmed");
    assert.equal(parseSasToken(`x${token}`), undefined);
    assert.equal(parseSasToken(`${token}\nse=1`), undefined);
  });

  it("refuses a token with a field that has no name, no '=', or a missing sr, sig or se", () => {
    const complete = "sr=hub%2Fdevices%2Fd1&sig=c2ln&se=1900000000";
    assert.equal(parseSasToken(`SharedAccessSignature ${complete}`)?.resource, "hub/devices/d1");
    for (const fields of [
      `=x&${complete}`,
      `${complete}&junk`,
      "sig=c2ln&se=1900000000",
      "sr=hub&se=1900000000",
      "se=1900000000",
      "sr=hub&sig=c2ln&se=",
      "sr=hub&sig=c2ln&se=19x",
      "sr=hub&sig=c2ln&se=x19",
    ]) {
      assert.equal(parseSasToken(`SharedAccessSignature ${fields}`), undefined, fields);
    }
  });

  it("answers false, without throwing, for a signature of the wrong length", async () => {
    const token = await buildSasToken("hub/devices/d1", 1_900_000_000, (d) =>
      hmacSha256(key, d).subarray(0, 16),
    );
    const fields = parseSasToken(token);
    assert.ok(fields);
    assert.equal(fields.signature.length, 16);
    assert.equal(sasSignatureMatches(fields, key), false);
  });
});
