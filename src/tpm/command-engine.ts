import { describeConnection, type TpmConnectionSpec } from "./connection-spec.js";
import {
  TPM_CC,
  TPM_RC,
  TPM_RH,
  TPM_ST,
  TPM_SU_CLEAR,
  TPMA_SESSION_CONTINUE,
  type TpmCommandName,
} from "./constants.js";
import { describeResponseCode, TpmError } from "./errors.js";
import { TpmReader, TpmWriter } from "./marshal.js";
import { openTransport, type OpenedTransport } from "./transport/open.js";

export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** How a handle that needs authorization is authorized: the empty password, or a policy session. */
export type Authorization = { kind: "password" } | { kind: "policy"; sessionHandle: number };
export const PASSWORD: Authorization = { kind: "password" };

export interface CommandRequest {
  handles?: number[];
  /** One per handle that needs authorization, in handle order (Part 1 §18.6). */
  authorizations?: Authorization[];
  parameters?: Buffer;
  /** How many handles the response carries before its parameters (Part 3, per command). */
  responseHandleCount?: number;
}

export interface CommandResponse {
  handles: number[];
  parameters: TpmReader;
}

export interface EngineOptions {
  commandTimeoutMs?: number;
  /**
   * Close the connection after this long without commands; the next command reopens it. swtpm and the
   * simulator serve one client at a time, so a client that holds on to its connection locks everyone else
   * out (another device session, the editor's "read TPM identity"). Default: 1 s for TCP TPMs, never for a
   * device (the kernel's resource manager shares it).
   */
  idleCloseMs?: number;
}

/**
 * Runs TPM commands one at a time over one transport: builds the command (header, handles, authorization
 * area, parameters), checks the response header and turns a non-zero response code into a TpmError.
 * The transport is opened on first use and reopened after it failed, so a restarted TPM daemon is found again.
 */
export class CommandEngine {
  private transport: OpenedTransport | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private pendingWork = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  readonly commandTimeoutMs: number;
  private readonly idleCloseMs: number;

  constructor(
    readonly spec: TpmConnectionSpec,
    options: EngineOptions = {},
  ) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.idleCloseMs = options.idleCloseMs ?? (spec.kind === "device" ? 0 : 1000);
  }

  get description(): string {
    return describeConnection(this.spec);
  }

  /** Runs `work` with exclusive use of the TPM: no other command interleaves with it. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.pendingWork++;
    clearTimeout(this.idleTimer);
    const result = this.queue.then(() => {
      if (this.closed) throw new TpmError("TPM_CLOSED", `${this.description}: closed`);
      return work();
    });
    this.queue = result
      .catch(() => undefined)
      .then(() => {
        if (--this.pendingWork === 0) this.scheduleIdleClose();
      });
    return result;
  }

  private scheduleIdleClose(): void {
    if (this.closed || this.idleCloseMs <= 0 || !this.transport) return;
    this.idleTimer = setTimeout(() => {
      if (this.pendingWork > 0) return;
      const transport = this.transport;
      this.transport = undefined;
      void transport?.close();
    }, this.idleCloseMs);
    this.idleTimer.unref();
  }

  /** Sends one command; must be called inside `exclusive`. */
  async execute(name: TpmCommandName, request: CommandRequest = {}): Promise<CommandResponse> {
    const transport = await this.connected();
    const command = encodeCommand(TPM_CC[name], request);
    const response = await transport.transmit(command, this.commandTimeoutMs);
    return decodeResponse(name, response, request);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    await this.queue;
    const transport = this.transport;
    this.transport = undefined;
    await transport?.close();
  }

  private async connected(): Promise<OpenedTransport> {
    if (this.transport?.usable) return this.transport;
    await this.transport?.close();
    this.transport = undefined;
    const transport = await openTransport(this.spec, this.commandTimeoutMs);
    if (transport.needsStartup) {
      try {
        const startup = new TpmWriter().u16(TPM_SU_CLEAR).toBuffer();
        const response = await transport.transmit(
          encodeCommand(TPM_CC.Startup, { parameters: startup }),
          this.commandTimeoutMs,
        );
        const rc = new TpmReader(response, "Startup response").bytes(10).readUInt32BE(6);
        if (rc !== TPM_RC.SUCCESS && rc !== TPM_RC.INITIALIZE) {
          throw new TpmError(
            "TPM_RESPONSE",
            `${this.description}: TPM2_Startup failed: ${describeResponseCode(rc)}`,
            {
              command: "Startup",
              responseCode: rc,
            },
          );
        }
      } catch (error) {
        await transport.close();
        throw error;
      }
    }
    this.transport = transport;
    return transport;
  }
}

export function encodeCommand(commandCode: number, request: CommandRequest): Buffer {
  const authorizations = request.authorizations ?? [];
  const body = new TpmWriter();
  for (const handle of request.handles ?? []) body.u32(handle);
  if (authorizations.length > 0) {
    const area = new TpmWriter();
    for (const auth of authorizations) {
      area
        .u32(auth.kind === "password" ? TPM_RH.PASSWORD_SESSION : auth.sessionHandle)
        .sized(Buffer.alloc(0)) // nonceCaller: empty, no HMAC sessions are used
        .u8(TPMA_SESSION_CONTINUE)
        .sized(Buffer.alloc(0)); // hmac: the empty password, or nothing for a policy session
    }
    const areaBytes = area.toBuffer();
    body.u32(areaBytes.length).bytes(areaBytes);
  }
  body.bytes(request.parameters ?? Buffer.alloc(0));
  const bodyBytes = body.toBuffer();
  return new TpmWriter()
    .u16(authorizations.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(10 + bodyBytes.length)
    .u32(commandCode)
    .bytes(bodyBytes)
    .toBuffer();
}

export function decodeResponse(name: string, response: Buffer, request: CommandRequest): CommandResponse {
  const reader = new TpmReader(response, `${name} response`);
  const tag = reader.u16();
  const size = reader.u32();
  const rc = reader.u32();
  if (size !== response.length) {
    throw new TpmError(
      "TPM_PROTOCOL",
      `${name}: response size ${size} does not match ${response.length} bytes`,
    );
  }
  if (rc !== TPM_RC.SUCCESS) {
    throw new TpmError("TPM_RESPONSE", `TPM2_${name} failed: ${describeResponseCode(rc)}`, {
      command: name,
      responseCode: rc,
    });
  }
  const handles: number[] = [];
  for (let i = 0; i < (request.responseHandleCount ?? 0); i++) handles.push(reader.u32());
  if (tag === TPM_ST.SESSIONS) {
    const parameterSize = reader.u32();
    return { handles, parameters: new TpmReader(reader.bytes(parameterSize), `${name} response parameters`) };
  }
  return { handles, parameters: new TpmReader(reader.rest(), `${name} response parameters`) };
}
