// The web page's access token: random at each start, handed to the person once in the printed URL (as
// Jupyter does), then sent by the page as "Authorization: Bearer". Compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** 256 bits of randomness, base64url so that it needs no escaping in a URL. */
export const ACCESS_TOKEN_BYTES = 32;

export function newAccessToken(): string {
  return randomBytes(ACCESS_TOKEN_BYTES).toString("base64url");
}

/** Constant time whatever the presented length: both sides are hashed to 32 bytes before the comparison. */
export function accessTokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined || presented.length === 0) return false;
  const a = createHash("sha256").update(expected, "utf8").digest();
  const b = createHash("sha256").update(presented, "utf8").digest();
  return timingSafeEqual(a, b);
}

/**
 * The token a request carries: the Bearer credential, or (only where `fromQuery` allows it, i.e. for the
 * event stream, since EventSource cannot set headers) the `token` query parameter.
 */
export function presentedAccessToken(
  request: IncomingMessage,
  query: URLSearchParams,
  fromQuery: boolean,
): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  return fromQuery ? (query.get("token") ?? undefined) : undefined;
}
