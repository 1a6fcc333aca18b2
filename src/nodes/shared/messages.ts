// Runtime texts (status and errors) come from the device node set's message catalog,
// nodes/locales/<lang>/azure-iot-device.json, in the runtime's language. The English catalog is also read
// directly, so that an error has its English text before anyone translates it (and where no catalog is
// registered, as in node-red-node-test-helper).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeAPI } from "node-red";
import { ConfigurationError } from "../../device/index.js";

/** The namespace Node-RED gives a node set's catalog: "<module>/<node set name>". */
export const CATALOG = "@provisio/node-red-azure-iot/azure-iot-device";

export type MessageParams = Record<string, string | number>;

/** lib/nodes/shared and src/nodes/shared are both three levels below the package root. */
const ENGLISH_CATALOG = join(
  __dirname,
  "..",
  "..",
  "..",
  "nodes",
  "locales",
  "en-US",
  "azure-iot-device.json",
);

let english: Record<string, unknown> | undefined;

function englishCatalog(): Record<string, unknown> {
  english ??= JSON.parse(readFileSync(ENGLISH_CATALOG, "utf8")) as Record<string, unknown>;
  return english;
}

function interpolate(text: string, params: MessageParams | undefined): string {
  return text.replace(/__(\w+)__/g, (whole, name: string) =>
    params && name in params ? String(params[name]) : whole,
  );
}

/** The English text of a catalog key; the key itself when the catalog does not have it. */
export function englishText(key: string, params?: MessageParams): string {
  const text = key
    .split(".")
    .reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], englishCatalog());
  return typeof text === "string" ? interpolate(text, params) : key;
}

/** A catalog text in the runtime's language, English when the runtime has no catalog for it. */
export function translate(RED: NodeAPI, key: string, params?: MessageParams): string {
  const text = RED._(`${CATALOG}:${key}`, params);
  return text === key || text.endsWith(`:${key}`) ? englishText(key, params) : text;
}

/** An error the node adapters raise: its message is the English catalog text, its key lets us translate it. */
export interface LocalizableError extends Error {
  readonly messageKey: string;
  readonly messageParams: MessageParams;
}

/** Bad or incomplete node configuration (a ConfigurationError, so the session treats it as not retryable). */
export class NodeConfigurationError extends ConfigurationError implements LocalizableError {
  constructor(
    readonly messageKey: string,
    readonly messageParams: MessageParams = {},
  ) {
    super(englishText(`azure-iot.error.${messageKey}`, messageParams));
  }
}

/** A message a flow node cannot take (wrong type, missing payload, unknown command). */
export class NodeInputError extends TypeError implements LocalizableError {
  override readonly name = "NodeInputError";
  constructor(
    readonly messageKey: string,
    readonly messageParams: MessageParams = {},
  ) {
    super(englishText(`azure-iot.error.${messageKey}`, messageParams));
  }
}

function isLocalizable(error: Error): error is LocalizableError {
  return typeof (error as Partial<LocalizableError>).messageKey === "string";
}

/** The error with its message in the runtime's language (same object; errors of the core stay English). */
export function localized<E extends Error>(RED: NodeAPI, error: E): E {
  if (isLocalizable(error)) {
    error.message = translate(RED, `azure-iot.error.${error.messageKey}`, error.messageParams);
  }
  return error;
}

/** A translated error text for logs and warnings. */
export function errorText(RED: NodeAPI, key: string, params?: MessageParams): string {
  return translate(RED, `azure-iot.error.${key}`, params);
}
