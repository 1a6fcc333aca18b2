// Shared access signature tokens as IoT Hub and DPS use them:
//   SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64 HMAC}&se={expiry}[&skn={key name}]
// where the HMAC-SHA256 is over "{url-encoded resource}\n{expiry}".
import { createHmac, timingSafeEqual } from "node:crypto";

/** encodeURIComponent plus !'()* as the Azure SDKs encode them. */
export function encodeUriComponentStrict(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

export function stringToSign(encodedResource: string, expiry: number): Buffer {
  return Buffer.from(`${encodedResource}\n${expiry}`);
}

export interface SasFields {
  /** The resource URI, decoded. */
  resource: string;
  /** The resource as it stood in the token (url-encoded), which is what was signed. */
  encodedResource: string;
  signature: Buffer;
  expiry: number;
  keyName?: string;
}

export async function buildSasToken(
  resource: string,
  expiry: number,
  sign: (data: Buffer) => Promise<Buffer> | Buffer,
  keyName?: string,
): Promise<string> {
  const sr = encodeUriComponentStrict(resource);
  const signature = await sign(stringToSign(sr, expiry));
  const sig = encodeUriComponentStrict(signature.toString("base64"));
  const skn = keyName ? `&skn=${encodeUriComponentStrict(keyName)}` : "";
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${expiry}${skn}`;
}

export function hmacSha256(key: Buffer, data: Buffer): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** Parses a token; undefined when it is not a well-formed SAS token. */
export function parseSasToken(token: string): SasFields | undefined {
  const match = /^SharedAccessSignature (.+)$/.exec(token.trim());
  if (!match?.[1]) return undefined;
  const fields = new Map<string, string>();
  for (const pair of match[1].split("&")) {
    const at = pair.indexOf("=");
    if (at <= 0) return undefined;
    fields.set(pair.slice(0, at), pair.slice(at + 1));
  }
  const encodedResource = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  if (!encodedResource || !sig || !se || !/^\d+$/.test(se)) return undefined;
  try {
    const skn = fields.get("skn");
    return {
      resource: decodeURIComponent(encodedResource),
      encodedResource,
      signature: Buffer.from(decodeURIComponent(sig), "base64"),
      expiry: Number(se),
      ...(skn ? { keyName: decodeURIComponent(skn) } : {}),
    };
  } catch {
    return undefined;
  }
}

/** True when `fields` carries a valid HMAC-SHA256 signature made with `key`. */
export function sasSignatureMatches(fields: SasFields, key: Buffer): boolean {
  const expected = hmacSha256(key, stringToSign(fields.encodedResource, fields.expiry));
  return fields.signature.length === expected.length && timingSafeEqual(fields.signature, expected);
}
