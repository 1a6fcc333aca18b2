// A swtpm-protocol front end (data port + control port) in front of a real swtpm: it forwards every TPM
// command to swtpm and records it, and lets a test answer chosen commands itself, with a response code
// swtpm would not give on cue (a failing TPM2_Startup, a TPM in failure mode, a full NV) or a broken response.
import net from "node:net";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";

/** A response code for the command, a response to send instead (whole, or in pieces sent 20 ms apart), or
 *  undefined to forward it. */
export type FaultRule = (command: Buffer) => number | Buffer | Buffer[] | undefined;

export interface TpmFaultFront {
  /** Where clients connect: a swtpm connection spec. */
  connection: { kind: "swtpm"; host: string; port: number; ctrlPort: number };
  /** The command code of every command received, in order. */
  commands: number[];
  /** Data connections opened so far, and those still open. */
  dataConnectionsOpened(): number;
  dataConnectionsOpen(): number;
  /** Answers commands it matches instead of swtpm. */
  rule: FaultRule | undefined;
  /** The result the control port gives for CMD_INIT (0: success). */
  initResult: number;
  close(): Promise<void>;
}

const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
};

/** A response with no parameters: tag TPM_ST_NO_SESSIONS, size 10, the response code. */
export const bareResponse = (responseCode: number): Buffer =>
  Buffer.concat([Buffer.from([0x80, 0x01]), u32(10), u32(responseCode)]);

/** The command code of a TPM command (header bytes 6..9). */
export const commandCodeOf = (command: Buffer): number => command.readUInt32BE(6);

/** The handle at `index` of the command's handle area. */
export const commandHandleOf = (command: Buffer, index: number): number =>
  command.readUInt32BE(10 + 4 * index);

export async function startTpmFaultFront(swtpm: {
  host: string;
  port: number;
  ctrlPort: number;
}): Promise<TpmFaultFront> {
  const upstream = await SwtpmTransport.open(swtpm.host, swtpm.port, swtpm.ctrlPort, 10_000);
  const sockets = new Set<net.Socket>();
  const dataSockets = new Set<net.Socket>();
  let opened = 0;
  const track = (socket: net.Socket, set: Set<net.Socket>): void => {
    set.add(socket);
    socket.on("close", () => set.delete(socket));
    socket.on("error", () => socket.destroy());
  };

  const front: TpmFaultFront = {
    connection: { kind: "swtpm", host: "127.0.0.1", port: 0, ctrlPort: 0 },
    commands: [],
    dataConnectionsOpened: () => opened,
    dataConnectionsOpen: () => dataSockets.size,
    rule: undefined,
    initResult: 0,
    close: async () => {
      for (const socket of [...sockets, ...dataSockets]) socket.destroy();
      await Promise.all([closeServer(data), closeServer(control), upstream.close()]);
    },
  };

  const data = net.createServer((socket) => {
    opened++;
    track(socket, dataSockets);
    let buffered = Buffer.alloc(0);
    let busy = false;
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (buffered.length >= 10 && buffered.length >= buffered.readUInt32BE(2)) {
          const size = buffered.readUInt32BE(2);
          const command = Buffer.from(buffered.subarray(0, size));
          buffered = buffered.subarray(size);
          front.commands.push(commandCodeOf(command));
          const answer = front.rule?.(command);
          const response =
            answer === undefined
              ? await upstream.transmit(command, 10_000)
              : typeof answer === "number"
                ? bareResponse(answer)
                : answer;
          for (const [i, piece] of (Array.isArray(response) ? response : [response]).entries()) {
            if (i > 0) await new Promise((resolve) => setTimeout(resolve, 20));
            if (!socket.destroyed) socket.write(piece);
          }
        }
      } finally {
        busy = false;
      }
    };
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      pump().catch(() => socket.destroy());
    });
  });

  const control = net.createServer((socket) => {
    track(socket, sockets);
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 8) {
        buffered = buffered.subarray(8); // CMD_INIT and its flags
        socket.write(u32(front.initResult));
      }
    });
  });

  front.connection.port = await listen(data, "127.0.0.1");
  front.connection.ctrlPort = await listen(control, "127.0.0.1");
  return front;
}

function listen(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}
