// Errors the emulated hub raises on its service side, shaped like IoT Hub's REST errors:
// an HTTP status plus Azure's error code name (iot-hub-devguide "Understand and resolve IoT Hub errors").

export class HubServiceError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
    this.name = "HubServiceError";
  }
}

/** Azure's numeric error codes, as they appear in the JSON bodies of twin and REST errors. */
export const AzureErrorCode = {
  ArgumentInvalid: 400004,
  IotHubUnauthorizedAccess: 401002,
  DeviceMaximumQueueDepthExceeded: 403002,
  DeviceNotFound: 404001,
  DeviceNotOnline: 404103,
  PreconditionFailed: 412002,
  MessageTooLarge: 413001,
  ThrottlingException: 429001,
  GatewayTimeout: 504101,
} as const;

export type AzureErrorName = keyof typeof AzureErrorCode;

/** The JSON body IoT Hub returns with a failed request (status, code, message, tracking id, timestamp). */
export interface AzureErrorBody {
  errorCode: number;
  trackingId: string;
  message: string;
  timestampUtc: string;
}
