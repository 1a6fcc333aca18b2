import { DEFAULT_DEVICE_PATHS, type TpmConnectionSpec } from "../connection-spec.js";
import { DeviceTransport } from "./device.js";
import { MssimTransport } from "./mssim.js";
import { SwtpmTransport } from "./swtpm.js";
import type { TpmTransport } from "./transport.js";

export type OpenedTransport = TpmTransport & { readonly needsStartup: boolean };

export function openTransport(spec: TpmConnectionSpec, timeoutMs: number): Promise<OpenedTransport> {
  switch (spec.kind) {
    case "device":
      return DeviceTransport.open(spec.path ? [spec.path] : DEFAULT_DEVICE_PATHS);
    case "mssim":
      return MssimTransport.open(spec.host, spec.port, timeoutMs);
    case "swtpm":
      return SwtpmTransport.open(spec.host, spec.port, spec.ctrlPort, timeoutMs);
  }
}
