// rhea at the wire level: the AMQP error conditions IoT Hub uses, the peer frames rhea's typings omit, and safe
// ways to settle deliveries, close links and abort sockets.
import type { AmqpError, Connection, Delivery, Message, Receiver, Sender } from "rhea";

/** AMQP error conditions IoT Hub uses towards devices (docs/hub-amqp-protocol.md §3.3, §6.1). */
export const Condition = {
  unauthorized: "amqp:unauthorized-access",
  notFound: "amqp:not-found",
  notAllowed: "amqp:not-allowed",
  internal: "amqp:internal-error",
  decodeError: "amqp:decode-error",
  notImplemented: "amqp:not-implemented",
  messageSizeExceeded: "amqp:link:message-size-exceeded",
  resourceLimitExceeded: "amqp:resource-limit-exceeded",
  throttled: "com.microsoft:device-container-throttled",
} as const;

interface AttachFrame {
  source?: { address?: string } & Record<string, unknown>;
  target?: { address?: string } & Record<string, unknown>;
  snd_settle_mode?: 0 | 1 | 2;
  properties?: Record<string, unknown>;
}

/** rhea keeps the peer's ATTACH in link.remote.attach, which its typings omit. */
export function remoteAttach(link: Sender | Receiver): AttachFrame {
  return (link as unknown as { remote: { attach?: AttachFrame } }).remote.attach ?? {};
}

interface LocalAttachFrame {
  snd_settle_mode?: number;
  max_message_size?: number;
}

export function localAttach(link: Sender | Receiver): LocalAttachFrame {
  return (link as unknown as { local: { attach: LocalAttachFrame } }).local.attach;
}

export function remoteOpen(connection: Connection): { hostname?: unknown } {
  return (connection as unknown as { remote: { open?: { hostname?: unknown } } }).remote.open ?? {};
}

/** rhea's Message type is narrower than what goes on the wire (binary user-id, typed annotations). */
export function amqpMessage(fields: Record<string, unknown>): Message {
  return fields as unknown as Message;
}

export function destroySocket(connection: Connection): void {
  // rhea's abort_socket also stops its heartbeat timers and reports 'disconnected'; a bare destroy() would
  // leave the connection "open" inside rhea with a 480 s idle timer keeping the process alive.
  const internals = connection as unknown as {
    socket?: { destroy(): void };
    abort_socket?(socket: unknown): void;
  };
  const socket = internals.socket;
  if (!socket) return;
  if (typeof internals.abort_socket === "function") internals.abort_socket(socket);
  else socket.destroy();
}

export function closeLink(link: Sender | Receiver, error: AmqpError): void {
  try {
    if (!link.is_closed()) link.close(error);
  } catch {
    // The connection is already gone.
  }
}

/** Settles a device's delivery; pre-settled ones are only settled locally (obligation 6). */
export function settle(delivery: Delivery, outcome: "accept" | "reject", error?: AmqpError): void {
  try {
    if (delivery.remote_settled) {
      delivery.update(true);
      return;
    }
    if (outcome === "accept") delivery.accept();
    else delivery.reject(error);
  } catch {
    // The link closed before we answered; the device will resend on its new link.
  }
}
