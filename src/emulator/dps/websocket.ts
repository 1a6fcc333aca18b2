// Server side of WebSockets (RFC 6455), just what the device SDKs' AmqpWs and MqttWs transports need:
// the upgrade handshake with a subprotocol (AMQPWSB10 or mqtt, docs/dps-protocol.md §1) and binary frames,
// presented as a byte stream so the AMQP and MQTT servers can treat it like their TLS sockets.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";

const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 §1.3
const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
const MAX_FRAME_PAYLOAD = 1024 * 1024;

/**
 * Completes the handshake when the request asks for one of `protocols`; answers 400 (and closes) otherwise.
 * Returns the chosen subprotocol and the byte stream.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: TLSSocket,
  head: Buffer,
  protocols: readonly string[],
): { protocol: string; stream: WebSocketStream } | undefined {
  const key = req.headers["sec-websocket-key"];
  const offered = String(req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((p) => p.trim());
  const protocol = protocols.find((p) => offered.includes(p));
  if (
    req.method !== "GET" ||
    String(req.headers.upgrade ?? "").toLowerCase() !== "websocket" ||
    req.headers["sec-websocket-version"] !== "13" ||
    typeof key !== "string" ||
    !protocol
  ) {
    socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return undefined;
  }
  const accept = createHash("sha1")
    .update(key + HANDSHAKE_GUID)
    .digest("base64");
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  const stream = new WebSocketStream(socket);
  if (head.length > 0) stream.receive(head);
  socket.on("data", (chunk: Buffer) => stream.receive(chunk));
  // The readers (rhea, the MQTT server) learn of a lost connection through 'end'.
  socket.on("error", () => stream.endOfInput());
  socket.on("close", () => stream.endOfInput());
  return { protocol, stream };
}

/** The payloads of the client's data frames as a byte stream; writes go out as binary frames. */
export class WebSocketStream extends Duplex {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private closing = false;

  constructor(private readonly socket: TLSSocket) {
    super();
  }

  /** Feeds raw bytes from the socket; protocol violations close the connection (RFC 6455 §7.1.7). */
  receive(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    for (;;) {
      const frame = this.nextFrame();
      if (frame === "incomplete") return;
      if (frame === "invalid") return void this.fail();
      this.handle(frame.opcode, frame.payload);
      if (this.ended) return;
    }
  }

  /** No more data will come (the client closed, or the socket is gone). */
  endOfInput(): void {
    if (this.ended) return;
    this.ended = true;
    this.push(null);
  }

  override _read(): void {
    // push-based: data arrives with receive()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    this.socket.write(encodeFrame(OPCODE.binary, chunk), () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sendClose(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  private nextFrame(): { opcode: number; payload: Buffer } | "incomplete" | "invalid" {
    const data = this.buffered;
    if (data.length < 2) return "incomplete";
    const fin = (data[0] & 0x80) !== 0;
    const opcode = data[0] & 0x0f;
    if ((data[0] & 0x70) !== 0 || (data[1] & 0x80) === 0) return "invalid"; // no extensions; clients mask
    let length = data[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (data.length < 4) return "incomplete";
      length = data.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (data.length < 10) return "incomplete";
      const big = data.readBigUInt64BE(2);
      if (big > BigInt(MAX_FRAME_PAYLOAD)) return "invalid";
      length = Number(big);
      offset = 10;
    }
    if (length > MAX_FRAME_PAYLOAD) return "invalid";
    if (opcode >= 0x8 && (!fin || length > 125)) return "invalid"; // control frames, §5.5
    if (data.length < offset + 4 + length) return "incomplete";
    const mask = data.subarray(offset, offset + 4);
    const payload = Buffer.from(data.subarray(offset + 4, offset + 4 + length));
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    this.buffered = data.subarray(offset + 4 + length);
    return { opcode, payload };
  }

  private handle(opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OPCODE.continuation:
      case OPCODE.binary:
      case OPCODE.text:
        if (payload.length > 0 && !this.ended) this.push(payload);
        return;
      case OPCODE.ping:
        this.socket.write(encodeFrame(OPCODE.pong, payload));
        return;
      case OPCODE.pong:
        return;
      case OPCODE.close:
        this.sendClose(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        this.endOfInput();
        this.socket.end();
        return;
      default:
        this.fail();
    }
  }

  private sendClose(code: number): void {
    if (this.closing || this.socket.destroyed) return;
    this.closing = true;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code);
    this.socket.write(encodeFrame(OPCODE.close, body));
  }

  private fail(): void {
    this.sendClose(1002); // protocol error
    this.socket.end();
    this.endOfInput();
  }
}

function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.alloc(2) : length <= 0xffff ? Buffer.alloc(4) : Buffer.alloc(10);
  header[0] = 0x80 | opcode;
  if (length < 126) {
    header[1] = length;
  } else if (length <= 0xffff) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}
