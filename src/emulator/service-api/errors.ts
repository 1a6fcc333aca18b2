// Errors of the service REST API, rendered in the JSON shapes the Azure services (and so the official
// service SDK clients) use. IoT Hub: {"Message":"ErrorCode:<code>;<text>","ExceptionMessage":"Tracking ID:..."}
// (azure-iot-http-base parses the code out of "Message"); DPS: {"errorCode":<int>,"trackingId":...,"message":...}.
import { randomUUID } from "node:crypto";

export type ErrorFlavour = "hub" | "dps";

export class ServiceApiError extends Error {
  override readonly name = "ServiceApiError";
  constructor(
    readonly status: number,
    /** IoT Hub style error code, e.g. "DeviceNotFound". */
    readonly errorCode: string,
    message: string,
    /** DPS style numeric code, e.g. 404201; derived from the status when absent. */
    readonly dpsErrorCode?: number,
  ) {
    super(message);
  }
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** Six-digit Azure error numbers are the HTTP status followed by a three-digit detail. */
function numericCode(error: ServiceApiError): number {
  return error.dpsErrorCode ?? error.status * 1000 + 1;
}

export function renderError(error: ServiceApiError, flavour: ErrorFlavour): RenderedError {
  const trackingId = randomUUID().replace(/-/g, "");
  const timestampUtc = new Date().toISOString();
  if (flavour === "dps") {
    return {
      status: error.status,
      headers: { "x-ms-error-code": String(numericCode(error)) },
      body: { errorCode: numericCode(error), trackingId, message: error.message, timestampUtc },
    };
  }
  return {
    status: error.status,
    headers: { "iothub-errorcode": error.errorCode },
    body: {
      Message: `ErrorCode:${error.errorCode};${error.message}`,
      ExceptionMessage: `Tracking ID:${trackingId}-TimeStamp:${timestampUtc}`,
    },
  };
}

/** Common errors, named as Azure names them. */
export const errors = {
  badRequest: (message: string) => new ServiceApiError(400, "ArgumentInvalid", message, 400004),
  invalidJson: (message: string) => new ServiceApiError(400, "InvalidProtocolVersion", message, 400001),
  unauthorized: (message = "Unauthorized") =>
    new ServiceApiError(401, "IotHubUnauthorizedAccess", message, 401002),
  notFound: (message = "The requested resource does not exist") =>
    new ServiceApiError(404, "ResourceNotFound", message, 404001),
  methodNotAllowed: (method: string) =>
    new ServiceApiError(405, "MethodNotAllowed", `method ${method} is not allowed on this resource`, 405001),
  preconditionFailed: (message = "Precondition failed: the etag does not match") =>
    new ServiceApiError(412, "PreconditionFailed", message, 412001),
  payloadTooLarge: (limit: number) =>
    new ServiceApiError(413, "RequestEntityTooLarge", `the request body exceeds ${limit} bytes`, 413001),
  unsupportedMediaType: () =>
    new ServiceApiError(415, "UnsupportedMediaType", "the request body must be application/json", 415001),
  internal: () => new ServiceApiError(500, "ServerError", "internal error in the emulator", 500001),
};

/** Duck-typed view of the hub's and the DPS store's typed errors (status + errorCode). */
export function asServiceApiError(error: unknown): ServiceApiError | undefined {
  if (error instanceof ServiceApiError) return error;
  if (typeof error !== "object" || error === null) return undefined;
  const candidate = error as { status?: unknown; errorCode?: unknown; message?: unknown };
  if (typeof candidate.status !== "number" || candidate.status < 400 || candidate.status > 599)
    return undefined;
  const message = typeof candidate.message === "string" ? candidate.message : "request failed";
  if (typeof candidate.errorCode === "number") {
    return new ServiceApiError(candidate.status, "ServiceError", message, candidate.errorCode);
  }
  const code = typeof candidate.errorCode === "string" ? candidate.errorCode : "ServiceError";
  return new ServiceApiError(candidate.status, code, message);
}
