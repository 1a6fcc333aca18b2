// A configuration field as the runtime hands it over. Node-RED replaces a field that is exactly "${NAME}" by
// the environment variable, and leaves it as it is when the variable is not set: say so, instead of
// reporting "${NAME}" as a bad value.
import { NodeConfigurationError } from "./messages.js";

const UNRESOLVED_VARIABLE = /^\$\{(\S+)\}$/;

/** The field as trimmed text ("" when absent or not text); throws when it names an environment variable that is not set. */
export function configField(value: unknown): string {
  if (typeof value !== "string" && typeof value !== "number") return "";
  const text = String(value).trim();
  const variable = UNRESOLVED_VARIABLE.exec(text)?.[1];
  if (variable !== undefined) throw new NodeConfigurationError("envNotSet", { name: variable });
  return text;
}
