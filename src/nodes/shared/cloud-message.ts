// A cloud-to-device message as a Node-RED msg: the body decoded by its content type, its properties and ids.
import type { CloudMessage } from "../../device/index.js";
import { NodeInputError } from "./messages.js";

export interface CloudMessageFields {
  payload: unknown;
  properties: Record<string, string>;
  messageId?: string;
  correlationId?: string;
  expiryTimeUtc?: string;
  contentType?: string;
  contentEncoding?: string;
}

/** application/json and every "+json" type (application/ld+json, …), with or without parameters. */
const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;
/** text/*, and no content type at all (what the portal and most service code send). */
const TEXT_TYPE = /^text\//i;

/**
 * JSON content types → the parsed value; text/* or no content type → a string (UTF-8); any other content
 * type (application/octet-stream, …) → the body as a Buffer. A JSON type with a body that is not JSON
 * throws NodeInputError("c2dJsonInvalid").
 */
export function payloadOf(body: Buffer, contentType: string | undefined): unknown {
  const type = contentType?.trim() ?? "";
  if (JSON_TYPE.test(type)) {
    try {
      return JSON.parse(body.toString("utf8")) as unknown;
    } catch (error) {
      throw new NodeInputError("c2dJsonInvalid", { reason: (error as Error).message });
    }
  }
  if (type === "" || TEXT_TYPE.test(type)) return body.toString("utf8");
  return Buffer.from(body);
}

/** The msg fields of a message, with the body as text when it cannot be parsed (for the error's msg). */
export function cloudMessageFields(message: CloudMessage): { fields: CloudMessageFields; error?: Error } {
  const fields: CloudMessageFields = { payload: undefined, properties: { ...message.properties } };
  for (const name of [
    "messageId",
    "correlationId",
    "expiryTimeUtc",
    "contentType",
    "contentEncoding",
  ] as const) {
    const value = message[name];
    if (value !== undefined) fields[name] = value;
  }
  try {
    fields.payload = payloadOf(message.body, message.contentType);
    return { fields };
  } catch (error) {
    fields.payload = message.body.toString("utf8");
    return { fields, error: error as Error };
  }
}
