// The device HTTPS API of the emulated IoT Hub, as azure-iot-device-http uses it (docs/hub-mqtt-protocol.md §8):
//   POST   /devices/{id}/messages/events                      telemetry (properties as headers)
//   GET    /devices/{id}/messages/deviceBound                 next C2D message (200, ETag = lock token) or 204
//   DELETE /devices/{id}/messages/deviceBound/{lockToken}     complete (?reject: reject)
//   POST   /devices/{id}/messages/deviceBound/{lockToken}/abandon
// Each request authenticates on its own: Authorization SAS token, or the TLS client certificate.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Message } from "rhea";
import type { C2dDispatch, C2dLease, C2dOutcome } from "./c2d-dispatch.js";
import {
  checkDeviceCertificate,
  checkDeviceSasToken,
  type CredentialCheck,
  type CredentialContext,
} from "./device-credentials.js";
import type { PeerCertificateInfo } from "./device-connections.js";
import { takeTelemetry, type TelemetryIntakeParts } from "./telemetry-intake.js";

const ROUTE = /^\/devices\/([^/]+)\/messages\/(events|devicebound)(?:\/([^/]+)(\/abandon)?)?$/i;

/** Whether a request path is the device API's (the service REST API shares the port on Azure's hub host). */
export function isDeviceApiPath(requestUrl: string | undefined): boolean {
  return ROUTE.test(new URL(requestUrl ?? "/", "https://hub.invalid").pathname);
}

export interface DeviceHttpsParts extends TelemetryIntakeParts {
  credentials: CredentialContext;
  c2d: C2dDispatch;
  peer(tlsSocket: TLSSocket): PeerCertificateInfo | undefined;
  log(line: string): void;
}

/** An HTTPS error as IoT Hub's device API shapes it: iothub-errorcode header, Message / ExceptionMessage body. */
class HttpsApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

interface Lock {
  hubHostName: string;
  deviceId: string;
  lease: C2dLease;
}

export class DeviceHttpsApi {
  /** Messages handed out and not yet settled, by lock token. */
  private readonly locks = new Map<string, Lock>();

  constructor(private readonly parts: DeviceHttpsParts) {}

  handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    try {
      this.route(req, res, body);
    } catch (error) {
      const apiError =
        error instanceof HttpsApiError
          ? error
          : new HttpsApiError(500, "ServerError", "The hub could not process the request.");
      if (!(error instanceof HttpsApiError))
        this.parts.log(`HTTPS device request failed: ${(error as Error).name}`);
      sendError(res, apiError);
    }
  }

  /** Locked messages go back to their queues (the hub is closing). */
  close(): void {
    for (const [token, lock] of this.locks) {
      lock.lease.release();
      this.locks.delete(token);
    }
  }

  private route(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const url = new URL(req.url ?? "/", "https://hub.invalid");
    const route = ROUTE.exec(url.pathname);
    if (!route?.[1] || !route[2])
      throw new HttpsApiError(404, "NotFound", "The hub does not serve this path.");
    if (!url.searchParams.get("api-version")) {
      throw new HttpsApiError(400, "InvalidProtocolVersion", "The api-version query parameter is required.");
    }
    const deviceId = decodeSegment(route[1]);
    const device = this.authenticate(req, deviceId);
    const lockToken = route[3] !== undefined ? decodeSegment(route[3]) : undefined;
    const abandon = route[4] !== undefined;
    if (route[2].toLowerCase() === "events") {
      if (lockToken !== undefined)
        throw new HttpsApiError(404, "NotFound", "The hub does not serve this path.");
      if (req.method !== "POST") throw new HttpsApiError(405, "MethodNotAllowed", "Use POST to send events.");
      return this.telemetry(req, res, body, device);
    }
    if (lockToken === undefined) {
      if (req.method !== "GET")
        throw new HttpsApiError(405, "MethodNotAllowed", "Use GET to receive messages.");
      return this.receive(res, device.hubHostName, deviceId);
    }
    if (abandon ? req.method !== "POST" : req.method !== "DELETE") {
      throw new HttpsApiError(405, "MethodNotAllowed", "Complete and reject with DELETE, abandon with POST.");
    }
    const outcome: C2dOutcome = abandon
      ? "abandoned"
      : url.searchParams.has("reject")
        ? "rejected"
        : "completed";
    this.settle(res, device.hubHostName, deviceId, lockToken, outcome);
  }

  private authenticate(req: IncomingMessage, deviceId: string): Extract<CredentialCheck, { ok: true }> {
    const authorization = req.headers.authorization;
    const check =
      typeof authorization === "string" && authorization.length > 0
        ? checkDeviceSasToken(authorization, deviceId, this.parts.credentials)
        : checkDeviceCertificate(
            this.parts.peer(req.socket as TLSSocket),
            deviceId,
            undefined,
            this.parts.credentials,
          );
    if (!check.ok) {
      this.parts.log(`HTTPS device request refused: ${check.reason}`);
      throw new HttpsApiError(401, "IotHubUnauthorizedAccess", "Unauthorized");
    }
    return check;
  }

  private telemetry(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    device: Extract<CredentialCheck, { ok: true }>,
  ): void {
    const result = takeTelemetry(
      telemetryMessageFromHeaders(req.headers, body),
      { hubHostName: device.hubHostName, deviceId: device.deviceId, authMethod: device.method },
      this.parts,
    );
    if (!result.accepted) {
      if (result.reason === "too-large") throw new HttpsApiError(413, "MessageTooLarge", result.description);
      throw new HttpsApiError(429, "ThrottlingException", result.description);
    }
    const delay = this.parts.faults.ackDelayMs;
    const answer = (): void => void res.writeHead(204).end();
    if (delay > 0) setTimeout(answer, delay).unref();
    else answer();
  }

  private receive(res: ServerResponse, hubHostName: string, deviceId: string): void {
    const lockToken = randomUUID();
    // Past the hub's lock timeout the message counts as abandoned and is delivered again; the token is void.
    const lease = this.parts.c2d.take(hubHostName, deviceId, () => this.locks.delete(lockToken));
    if (!lease) return void res.writeHead(204).end();
    this.locks.set(lockToken, { hubHostName, deviceId, lease });
    const { entry } = lease;
    const headers: Record<string, string> = {
      ETag: `"${lockToken}"`,
      "iothub-messageid": entry.messageId,
      "iothub-to": `/devices/${deviceId}/messages/devicebound`,
      "iothub-expiry": new Date(entry.expiresAtMs).toISOString(),
      "iothub-sequencenumber": String(entry.sequenceNumber),
      "iothub-deliverycount": String(entry.deliveryCount),
      "Content-Type": "application/octet-stream",
      "Content-Length": String(entry.body.length),
    };
    if (entry.correlationId !== undefined) headers["iothub-correlationid"] = entry.correlationId;
    for (const [name, value] of Object.entries(entry.properties)) headers[`iothub-app-${name}`] = value;
    res.writeHead(200, headers).end(entry.body);
  }

  private settle(
    res: ServerResponse,
    hubHostName: string,
    deviceId: string,
    lockToken: string,
    outcome: C2dOutcome,
  ): void {
    const lock = this.locks.get(lockToken);
    if (!lock || lock.deviceId !== deviceId || lock.hubHostName !== hubHostName) {
      throw new HttpsApiError(
        412,
        "DeviceMessageLockLost",
        "The lock token is not valid (expired or settled).",
      );
    }
    this.locks.delete(lockToken);
    lock.lease.settle(outcome);
    res.writeHead(204).end();
  }
}

/** The device's headers as the AMQP message fields IoT Hub maps them to. */
export function telemetryMessageFromHeaders(headers: IncomingMessage["headers"], body: Buffer): Message {
  const message: Message = { body };
  const application: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const text = (value: string | string[] | undefined): string | undefined =>
    Array.isArray(value) ? value.join(",") : value;
  for (const [name, raw] of Object.entries(headers)) {
    const value = text(raw);
    if (value === undefined) continue;
    switch (name) {
      case "iothub-messageid":
        message.message_id = value;
        break;
      case "iothub-correlationid":
        message.correlation_id = value;
        break;
      case "iothub-userid":
        message.user_id = value;
        break;
      case "iothub-expiry":
        message.absolute_expiry_time = value as unknown as Date;
        break;
      case "iothub-contenttype":
        message.content_type = value;
        break;
      case "iothub-contentencoding":
        message.content_encoding = value;
        break;
      case "iothub-interface-id":
        annotations["iothub-interface-id"] = value;
        break;
      case "dt-subject":
        annotations["dt-subject"] = value;
        break;
      default:
        if (name.startsWith("iothub-app-")) application[name.slice("iothub-app-".length)] = value;
    }
  }
  if (Object.keys(application).length > 0) message.application_properties = application;
  if (Object.keys(annotations).length > 0) message.message_annotations = annotations;
  return message;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpsApiError(400, "ArgumentInvalid", "The path is not correctly encoded.");
  }
}

function sendError(res: ServerResponse, error: HttpsApiError): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify({
    Message: `ErrorCode:${error.errorCode};${error.message}`,
    ExceptionMessage: `Tracking ID:${randomUUID().replace(/-/g, "")} TimeStamp:${new Date().toISOString()}`,
  });
  res
    .writeHead(error.status, {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": Buffer.byteLength(text),
      "iothub-errorcode": error.errorCode,
    })
    .end(text);
}
