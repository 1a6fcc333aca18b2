// Errors as DPS reports them: an HTTP status, a six-digit errorCode (ProvisioningServiceErrorDetails) and a
// message that never carries a key or token.
import { randomUUID } from "node:crypto";

/** DPS error codes (ProvisioningServiceErrorDetails.errorCode) the emulator uses. */
export const DPS_ERROR = {
  badRequest: 400004,
  invalidRegistrationId: 400006,
  customAllocationFailed: 400207,
  unauthorized: 401002,
  notFound: 404001,
  operationNotFound: 404201,
  registrationNotFound: 404202,
  methodNotAllowed: 405000,
  preconditionFailed: 412002,
  payloadTooLarge: 413001,
  throttled: 429001,
  internal: 500000,
} as const;

export class DpsError extends Error {
  override readonly name = "DpsError";
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }

  /** The body Azure sends with an error (ProvisioningServiceErrorDetails). */
  toBody(): { errorCode: number; trackingId: string; message: string; timestampUtc: string } {
    return {
      errorCode: this.errorCode,
      trackingId: randomUUID(),
      message: this.message,
      timestampUtc: new Date().toISOString(),
    };
  }
}

export const unauthorized = (why: string): DpsError => new DpsError(401, DPS_ERROR.unauthorized, why);
