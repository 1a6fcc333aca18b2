// A minimal Microsoft TPM simulator front end (command port + platform port) in front of swtpm, so the
// mssim transport can be tested here: handshake and platform signals are answered locally, commands are
// forwarded to swtpm's data port and wrapped the way the simulator answers: [u32 length][response][u32 ack=0].
import net from "node:net";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";

const SEND_COMMAND = 8;
const HAND_SHAKE = 15;
const SESSION_END = 20;

export interface MssimFront {
  host: string;
  port: number;
  /** Signals received on the platform port, in order. */
  platformSignals: number[];
  close(): Promise<void>;
}

const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
};

export async function startMssimFront(swtpm: {
  host: string;
  port: number;
  ctrlPort: number;
}): Promise<MssimFront> {
  const upstream = await SwtpmTransport.open(swtpm.host, swtpm.port, swtpm.ctrlPort, 10_000);
  const platformSignals: number[] = [];
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };

  const command = net.createServer((socket) => {
    track(socket);
    let buffered = Buffer.alloc(0);
    let busy = false;
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (buffered.length >= 4) {
          const code = buffered.readUInt32BE(0);
          if (code === HAND_SHAKE) {
            if (buffered.length < 8) break;
            buffered = buffered.subarray(8);
            socket.write(Buffer.concat([u32(1), u32(0), u32(0)]));
          } else if (code === SEND_COMMAND) {
            if (buffered.length < 9) break;
            const length = buffered.readUInt32BE(5);
            if (buffered.length < 9 + length) break;
            const tpmCommand = Buffer.from(buffered.subarray(9, 9 + length));
            buffered = buffered.subarray(9 + length);
            const response = await upstream.transmit(tpmCommand, 10_000);
            socket.write(Buffer.concat([u32(response.length), response, u32(0)]));
          } else if (code === SESSION_END) {
            buffered = buffered.subarray(4);
            socket.end();
          } else {
            socket.destroy();
            break;
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

  const platform = net.createServer((socket) => {
    track(socket);
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const signal = buffered.readUInt32BE(0);
        buffered = buffered.subarray(4);
        platformSignals.push(signal);
        if (signal === SESSION_END) socket.end();
        else socket.write(u32(0));
      }
    });
  });

  const host = "127.0.0.1";
  // the simulator's platform port is the command port + 1: find a free pair
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await listen(command, host, 0);
    try {
      await listen(platform, host, port + 1);
      return {
        host,
        port,
        platformSignals,
        close: async () => {
          for (const socket of sockets) socket.destroy();
          await Promise.all([closeServer(command), closeServer(platform), upstream.close()]);
        },
      };
    } catch {
      await closeServer(command);
    }
  }
  await upstream.close();
  throw new Error("no free port pair for the simulator front end");
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}
