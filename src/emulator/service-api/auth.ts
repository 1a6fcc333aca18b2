// SAS authentication of service REST calls with a shared access policy (the service connection strings'
// "SharedAccessKeyName" / "SharedAccessKey"). The token's resource is the service's host name; IoT Hub and
// DPS both sign "{url-encoded host}\n{expiry}" (see src/common/sas.ts).
import { parseSasToken, sasSignatureMatches } from "../../common/sas.js";
import { errors, type ServiceApiError } from "./errors.js";

export interface SharedAccessPolicy {
  /** Host names (as in the connection string's HostName) this policy's tokens may name. */
  hostNames: readonly string[];
  keyName: string;
  /** The policy key, base64 as in the connection string. */
  key: string;
}

export interface ServiceCaller {
  /** The host name the token was issued for, as configured (one of the policy's hostNames). */
  hostName: string;
  keyName: string;
}

/** The host named by a token's resource: "host" or "host/anything" (case-insensitive, as Azure). */
function matchHostName(resource: string, hostNames: readonly string[]): string | undefined {
  const wanted = resource.toLowerCase();
  return hostNames.find((hostName) => {
    const lower = hostName.toLowerCase();
    return wanted === lower || wanted.startsWith(`${lower}/`);
  });
}

/**
 * Checks an Authorization header against the policies; returns the caller or the 401 to answer. The reason
 * of a refusal stays generic on purpose: it must not help guess a key.
 */
export function authenticateServiceCall(
  authorization: string | undefined,
  policies: readonly SharedAccessPolicy[],
  nowSeconds: number = Math.floor(Date.now() / 1000),
): ServiceCaller | ServiceApiError {
  if (!authorization) return errors.unauthorized("missing Authorization header (a SharedAccessSignature)");
  const token = parseSasToken(authorization);
  if (!token) return errors.unauthorized("the Authorization header is not a valid SharedAccessSignature");
  if (token.expiry <= nowSeconds) return errors.unauthorized("the SharedAccessSignature has expired");
  for (const policy of policies) {
    if (token.keyName !== undefined && token.keyName !== policy.keyName) continue;
    const hostName = matchHostName(token.resource, policy.hostNames);
    if (hostName === undefined) continue;
    if (sasSignatureMatches(token, Buffer.from(policy.key, "base64"))) {
      return { hostName, keyName: policy.keyName };
    }
  }
  return errors.unauthorized("the SharedAccessSignature is not valid for this resource");
}
