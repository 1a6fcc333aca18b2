// Direct methods beside the lifecycle: which handler takes a call (by name, else one for all methods), and the
// calls waiting for the flow's answer. Every call is answered exactly once: by the handler's answer, at once
// with 404 when nobody handles its name, or with 504 when the answer does not come within the handler's
// response timeout — never left for the service to time out (docs/methods-and-c2d.md §2).
import { ValidationError } from "./errors.js";

/** IoT Hub's limit for a direct-method payload, each way (docs/hub-amqp-protocol.md §7). */
export const METHOD_PAYLOAD_LIMIT_BYTES = 128 * 1024;
/** Azure's default response timeout for a method call (docs/conventions.md §5.1). */
export const DEFAULT_METHOD_RESPONSE_TIMEOUT_MS = 30_000;

/** Status codes the device answers with when the flow does not (HTTP meaning, as IoT Hub passes them on). */
export const MethodStatus = {
  notImplemented: 404,
  noAnswer: 504,
  badRequest: 400,
} as const;

/** One method call as the hub connection delivers it; `respond` sends the answer on the call's own connection. */
export interface IncomingMethodCall {
  requestId: string;
  methodName: string;
  /** The request payload (JSON), undefined when the call had none. */
  payload: unknown;
  respond(status: number, payload: unknown): Promise<void>;
}

/** What a handler receives. */
export interface MethodCall {
  requestId: string;
  methodName: string;
  payload: unknown;
}

export type MethodHandler = (call: MethodCall) => void;

export interface MethodRegistration {
  /** The method names this handler takes; undefined = every method no named handler takes. */
  names?: readonly string[];
  /** How long the flow may take to answer a call before the device answers 504. */
  responseTimeoutMs?: number;
  /** Told when the device answered one of this handler's calls 504 because no answer came in time. */
  unanswered?: (call: MethodCall, timeoutMs: number) => void;
}

/** The call is no longer waiting: answered already, timed out, or its connection is gone. */
export class MethodCallNotWaitingError extends ValidationError {
  override name = "MethodCallNotWaitingError";
  constructor(readonly requestId: string) {
    super(
      `no method call ${requestId} is waiting for an answer: it was answered already, timed out, or the ` +
        `connection it came on is gone`,
    );
  }
}

interface Handler {
  handle: MethodHandler;
  unanswered: ((call: MethodCall, timeoutMs: number) => void) | undefined;
  names: ReadonlySet<string> | undefined;
  responseTimeoutMs: number;
}

interface WaitingCall {
  call: IncomingMethodCall;
  /** The connection (any token) the call came on: an answer must go back on it. */
  origin: object;
  timer: NodeJS.Timeout;
}

export interface MethodDispatcherEvents {
  /** A background answer (404, 504) could not be sent; the service times out on its own. */
  warning(error: Error): void;
  /** A call no handler takes was answered 404. */
  notImplemented(methodName: string): void;
}

export class MethodDispatcher {
  private readonly handlers = new Set<Handler>();
  private readonly waiting = new Map<string, WaitingCall>();

  constructor(private readonly events: MethodDispatcherEvents) {}

  /** True while any handler is registered: the hub connection should listen for method calls. */
  get listening(): boolean {
    return this.handlers.size > 0;
  }

  /** Method names some handler asked for by name (the SDK is told of each, so its own dispatch serves them). */
  get names(): string[] {
    const names = new Set<string>();
    for (const handler of this.handlers) handler.names?.forEach((name) => names.add(name));
    return [...names];
  }

  /** Adds a handler; returns the function that removes it. Calls already given to it keep waiting. */
  register(handle: MethodHandler, registration: MethodRegistration = {}): () => void {
    const timeout = registration.responseTimeoutMs ?? DEFAULT_METHOD_RESPONSE_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new ValidationError(`a method response timeout must be a positive number of ms, not ${timeout}`);
    }
    const names = registration.names?.map((name) => name.trim()).filter((name) => name.length > 0);
    const handler: Handler = {
      handle,
      unanswered: registration.unanswered,
      names: names && names.length > 0 ? new Set(names) : undefined,
      responseTimeoutMs: timeout,
    };
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
    };
  }

  /** A call arrived on connection `origin`: hand it to its handler, or answer it at once. */
  dispatch(call: IncomingMethodCall, origin: object): void {
    const handler = this.handlerFor(call.methodName);
    if (!handler) {
      this.answerInBackground(call, MethodStatus.notImplemented, {
        message: `method "${call.methodName}" is not implemented by this device`,
      });
      this.notify(() => this.events.notImplemented(call.methodName));
      return;
    }
    const timer = setTimeout(() => {
      if (this.waiting.get(call.requestId)?.call !== call) return;
      this.waiting.delete(call.requestId);
      this.answerInBackground(call, MethodStatus.noAnswer, {
        message: `method "${call.methodName}" got no answer from the device's flow within ${handler.responseTimeoutMs} ms`,
      });
      const { requestId, methodName, payload } = call;
      this.notify(() => handler.unanswered?.({ requestId, methodName, payload }, handler.responseTimeoutMs));
    }, handler.responseTimeoutMs);
    this.waiting.set(call.requestId, { call, origin, timer });
    try {
      handler.handle({ requestId: call.requestId, methodName: call.methodName, payload: call.payload });
    } catch (error) {
      this.events.warning(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Answers a waiting call. Rejects with ValidationError for an answer the hub would refuse (the call keeps
   * waiting, so a corrected answer can follow), MethodCallNotWaitingError for an unknown or expired requestId.
   */
  async respond(requestId: string, status: number, payload: unknown): Promise<void> {
    if (typeof requestId !== "string" || requestId.length === 0) {
      throw new ValidationError("a method answer needs the requestId of its call (msg.requestId)");
    }
    const waiting = this.waiting.get(requestId);
    if (!waiting) throw new MethodCallNotWaitingError(requestId);
    validateMethodAnswer(status, payload);
    this.waiting.delete(requestId);
    clearTimeout(waiting.timer);
    await waiting.call.respond(status, payload === undefined ? null : payload);
  }

  /** The connection `origin` is gone: its calls can no longer be answered (the service times them out). */
  forget(origin: object): void {
    for (const [requestId, waiting] of this.waiting) {
      if (waiting.origin !== origin) continue;
      clearTimeout(waiting.timer);
      this.waiting.delete(requestId);
    }
  }

  /** Calls waiting for an answer. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  private handlerFor(methodName: string): Handler | undefined {
    let catchAll: Handler | undefined;
    for (const handler of this.handlers) {
      if (handler.names?.has(methodName)) return handler;
      if (!handler.names) catchAll ??= handler;
    }
    return catchAll;
  }

  private notify(listener: () => void): void {
    try {
      listener();
    } catch (error) {
      this.events.warning(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private answerInBackground(call: IncomingMethodCall, status: number, payload: unknown): void {
    call.respond(status, payload).catch((error: unknown) => {
      this.events.warning(error instanceof Error ? error : new Error(String(error)));
    });
  }
}

/** Throws ValidationError for a status or payload IoT Hub would not carry. */
export function validateMethodAnswer(status: number, payload: unknown): void {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new ValidationError(
      `a method answer's status must be an integer status code, not ${String(status)}`,
    );
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(payload === undefined ? null : payload);
  } catch (error) {
    throw new ValidationError(
      `a method answer's payload must be JSON-serialisable: ${(error as Error).message}`,
    );
  }
  if (json === undefined) {
    throw new ValidationError(`a method answer's payload must be JSON-serialisable, not a ${typeof payload}`);
  }
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > METHOD_PAYLOAD_LIMIT_BYTES) {
    throw new ValidationError(
      `a method answer's payload is ${bytes} bytes as JSON; IoT Hub allows ${METHOD_PAYLOAD_LIMIT_BYTES}`,
    );
  }
}
