// Why a DPS service call failed, in words a station operator can act on. Built from what the service SDK
// reports (status, DPS's JSON error body) or from the socket error; never from the request, so no key,
// token or enrollment content ends up in an error text.

export type ServiceFailureKind =
  | "unauthorized"
  | "notFound"
  | "conflict"
  | "etagMismatch"
  | "badRequest"
  | "throttled"
  | "service"
  | "unreachable"
  | "untrusted"
  | "timeout";

export class DpsServiceError extends Error {
  override readonly name = "DpsServiceError";
  constructor(
    readonly kind: ServiceFailureKind,
    message: string,
    readonly details: { status?: number; errorCode?: number; trackingId?: string } = {},
  ) {
    super(message);
  }

  get status(): number | undefined {
    return this.details.status;
  }

  get errorCode(): number | undefined {
    return this.details.errorCode;
  }
}

interface DpsErrorBody {
  errorCode?: number;
  message?: string;
  trackingId?: string;
}

function parseBody(body: unknown): DpsErrorBody {
  if (typeof body !== "string" || body.trim() === "") return {};
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    return {
      ...(typeof parsed.errorCode === "number" ? { errorCode: parsed.errorCode } : {}),
      ...(typeof parsed.message === "string" ? { message: parsed.message } : {}),
      ...(typeof parsed.trackingId === "string" ? { trackingId: parsed.trackingId } : {}),
    };
  } catch {
    return {};
  }
}

const KIND_OF_STATUS: Record<number, ServiceFailureKind> = {
  400: "badRequest",
  401: "unauthorized",
  403: "unauthorized",
  404: "notFound",
  409: "conflict",
  412: "etagMismatch",
  429: "throttled",
};

const ADVICE: Partial<Record<ServiceFailureKind, string>> = {
  unauthorized:
    "the service refused the credentials: check the connection string (policy name and key, and that the policy may write enrollments)",
  etagMismatch:
    "the enrollment changed since its etag was read: get it again for the current etag, or set msg.force to overwrite",
  throttled: "the service throttles requests: send fewer per second",
};

/** A DpsServiceError for a failed call of `what` ("create enrollment press-17"). */
export function serviceErrorOf(error: unknown, what: string, target: string): DpsServiceError {
  if (error instanceof DpsServiceError) return error;
  const failure = error as {
    response?: { statusCode?: number };
    responseBody?: unknown;
    code?: string;
    message?: string;
  };
  const status = failure?.response?.statusCode;
  if (typeof status === "number") {
    const body = parseBody(failure.responseBody);
    const kind = KIND_OF_STATUS[status] ?? (status >= 500 ? "service" : "badRequest");
    const said = body.message ? `: ${body.message}` : "";
    const code = body.errorCode !== undefined ? `, error ${body.errorCode}` : "";
    const advice = ADVICE[kind] ? ` (${ADVICE[kind]})` : "";
    return new DpsServiceError(kind, `${what} failed: DPS answered ${status}${said}${code}${advice}`, {
      status,
      ...(body.errorCode !== undefined ? { errorCode: body.errorCode } : {}),
      ...(body.trackingId !== undefined ? { trackingId: body.trackingId } : {}),
    });
  }
  const code = failure?.code ?? "";
  const message = typeof failure?.message === "string" ? failure.message : String(error);
  if (code === "ECONNREFUSED") {
    return new DpsServiceError(
      "unreachable",
      `${what} failed: nothing listens on ${target} (connection refused)`,
    );
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new DpsServiceError("unreachable", `${what} failed: the host of ${target} is unknown (${code})`);
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code) || /certificate/i.test(message)) {
    return new DpsServiceError(
      "untrusted",
      `${what} failed: the TLS certificate of ${target} is not trusted (${message}): check the trusted CA`,
    );
  }
  return new DpsServiceError("unreachable", `${what} failed: ${target}: ${code ? `${code} ` : ""}${message}`);
}
