// The TPM transports on real sockets and files: a loopback peer plays the TPM's side of each protocol where a
// failure must be provoked (a refused handshake, an unacknowledged command, a peer that goes away or does not
// read yet), a listener that never accepts a host that does not answer a connect, swtpm behind the recording
// front end a failed initialisation, /dev/full a device that cannot be written and a FIFO a device that
// answers (it hands back what was written) or, given nothing, stays silent.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, open, readdir, readlink, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { TpmError } from "../../src/tpm/errors.js";
import { DeviceTransport } from "../../src/tpm/transport/device.js";
import { MssimTransport } from "../../src/tpm/transport/mssim.js";
import { openTransport } from "../../src/tpm/transport/open.js";
import { SocketChannel } from "../../src/tpm/transport/socket-channel.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import { startTpmFaultFront, type TpmFaultFront } from "../support/tpm-fault-front.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { connectingPortsTo } from "../support/tcp-connections.js";

const tpmError = (code: string, message: string | RegExp) => (error: unknown) =>
  error instanceof TpmError &&
  error.code === code &&
  (typeof message === "string" ? error.message === message : message.test(error.message));

const u32 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v, 4 * i));
  return b;
};

/** A loopback peer: `onConnection` plays the TPM's side; resolves with its port. */
async function peer(
  onConnection: (socket: net.Socket) => void,
): Promise<{ port: number; open(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    onConnection(socket);
    socket.resume(); // read to the end, so that the peer's close is seen
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Takes `n` bytes from the start of whatever the socket sends, then calls `answer` with them. */
const framed = (socket: net.Socket, n: number, answer: (request: Buffer) => void): void => {
  let buffered = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= n) {
      const request = buffered.subarray(0, n);
      buffered = buffered.subarray(n);
      answer(request);
    }
  });
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, limitMs = 5000): Promise<void> {
  for (const deadline = Date.now() + limitMs; !condition(); await sleep(20)) {
    if (Date.now() > deadline) assert.fail(`not within ${limitMs} ms: ${what}`);
  }
}

/** A loopback listener that accepts nothing, like the host of a TPM server that has stopped: a worker thread
 *  listens with a backlog of 1 and then blocks, so its event loop never accepts; once the kernel's accept queue
 *  is full (the fillers) it drops further SYNs and a connect() waits. */
async function unacceptingListener(): Promise<{ port: number; close(): Promise<void> }> {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const net = require("node:net");
     const { parentPort, workerData: gate } = require("node:worker_threads");
     const server = net.createServer((socket) => socket.destroy());
     server.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
       parentPort.postMessage(server.address().port);
       Atomics.wait(gate, 0, 0); // until the test lets go
       server.close();
     });`,
    { eval: true, workerData: gate },
  );
  const fillers: net.Socket[] = [];
  const close = async (): Promise<void> => {
    for (const filler of fillers) filler.destroy();
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    await worker.terminate();
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    // connect until one connection is not completed: the queue is full then, even without that last one
    for (let connected = true; connected;) {
      assert.ok(fillers.length < 64, "the accept queue of the unaccepting listener never filled");
      const filler = net.connect(port, "127.0.0.1").on("error", () => undefined);
      fillers.push(filler);
      connected = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        filler.once("connect", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    }
    fillers.pop()?.destroy();
    await until(() => !connectingPortsTo("127.0.0.1").includes(port), "the last filler given up");
    return { port, close };
  } catch (error) {
    await close();
    throw error;
  }
}

const fourBytes = (b: Buffer): number | undefined => (b.length >= 4 ? 4 : undefined);

describe("socket channel", () => {
  it("assembles a reply that arrives in pieces, and keeps nothing from before the request", async () => {
    const server = await peer((socket) => {
      socket.write("stale"); // before any request: not part of the reply
      framed(socket, 2, () => {
        socket.write(Buffer.from([1, 2]));
        setTimeout(() => socket.write(Buffer.from([3, 4, 5])), 20);
      });
    });
    const channel = await SocketChannel.connect("127.0.0.1", server.port, "peer", 2000);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50)); // "stale" has arrived
      const reply = await channel.exchange(Buffer.from("hi"), (b) => (b.length >= 4 ? 4 : undefined), 2000);
      assert.deepEqual([...reply], [1, 2, 3, 4]);
      assert.equal(channel.usable, true);
    } finally {
      await channel.close();
      await server.close();
    }
  });

  it("refuses a second exchange while one is in flight, and times out the first", async () => {
    const server = await peer(() => undefined); // never answers
    const channel = await SocketChannel.connect("127.0.0.1", server.port, "silent peer", 2000);
    try {
      const first = channel.exchange(Buffer.from("a"), fourBytes, 200);
      await assert.rejects(
        channel.exchange(Buffer.from("b"), fourBytes, 200),
        tpmError("TPM_PROTOCOL", "silent peer: an exchange is already in flight"),
      );
      await assert.rejects(first, tpmError("TPM_TIMEOUT", "silent peer: no response within 200 ms"));
      assert.equal(channel.usable, false);
      await until(() => server.open() === 0, "the timed-out connection closed");
      await assert.rejects(
        channel.exchange(Buffer.from("c"), fourBytes, 100),
        tpmError("TPM_TIMEOUT", "silent peer: no response within 200 ms"),
        "the first failure stays the channel's answer",
      );
    } finally {
      await channel.close();
      await server.close();
    }
  });

  it("fails the exchange in flight when the TPM closes the connection", async () => {
    const server = await peer((socket) => framed(socket, 1, () => socket.end()));
    const channel = await SocketChannel.connect("127.0.0.1", server.port, "closing peer", 2000);
    try {
      await assert.rejects(
        channel.exchange(Buffer.from("a"), fourBytes, 2000),
        tpmError("TPM_TRANSPORT", "closing peer: connection closed by the TPM"),
      );
      assert.equal(channel.usable, false);
    } finally {
      await channel.close();
      await server.close();
    }
  });

  it("fails the exchange in flight with TPM_CLOSED on close(), and sends nothing after", async () => {
    let received = 0;
    const server = await peer((socket) => socket.on("data", (chunk: Buffer) => (received += chunk.length)));
    const channel = await SocketChannel.connect("127.0.0.1", server.port, "peer", 2000);
    const inFlight = channel.exchange(Buffer.from("abc"), fourBytes, 2000);
    const closing = channel.close();
    await assert.rejects(inFlight, tpmError("TPM_CLOSED", "peer: connection closed"));
    channel.send(Buffer.from("late"));
    await closing;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(received, 3);
    await channel.close(); // a second close is harmless
    await server.close();
  });

  it("does not wait for a peer that never closes its side", async () => {
    const accepted: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on("error", () => undefined);
      accepted.push(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const channel = await SocketChannel.connect("127.0.0.1", port, "half-open peer", 2000);
    const alive = setInterval(() => undefined, 100); // as in a running Node-RED: close()'s own timer is unref'd
    try {
      await channel.close(); // resolves after at most 1 s
    } finally {
      clearInterval(alive);
    }
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("names the address it cannot connect to", async () => {
    const server = await peer(() => undefined);
    const { port } = server;
    await server.close();
    await assert.rejects(
      SocketChannel.connect("127.0.0.1", port, "gone", 2000),
      (error: unknown) =>
        tpmError("TPM_TRANSPORT", /^gone: cannot connect: connect ECONNREFUSED/)(error) &&
        ((error as Error).cause as NodeJS.ErrnoException).code === "ECONNREFUSED",
    );
  });

  // without its time-out the connect would wait for the kernel to give up (about two minutes)
  it(
    "gives up a connection the host never accepts at the time-out, and stops trying",
    { timeout: 20_000 },
    async () => {
      const listener = await unacceptingListener();
      try {
        const connecting = SocketChannel.connect("127.0.0.1", listener.port, "unaccepting host", 500);
        connecting.catch(() => undefined);
        await until(
          () => connectingPortsTo("127.0.0.1").includes(listener.port),
          "the connection waiting for the host's answer",
        );
        await assert.rejects(
          connecting,
          tpmError("TPM_TIMEOUT", "unaccepting host: no connection within 500 ms"),
        );
        await until(
          () => !connectingPortsTo("127.0.0.1").includes(listener.port),
          "the connection attempt given up after the time-out",
        );
      } finally {
        await listener.close();
      }
    },
  );

  it("close() ends the connection only after what was sent before it, even to a peer not reading yet", async () => {
    // As the simulator's session-end signal sent just before close(): a graceful end() goes out after the
    // socket's queue, where destroying the socket would drop what the kernel has not taken yet.
    let accepted: net.Socket | undefined;
    const received: Buffer[] = [];
    let peerEnded!: () => void;
    const ended = new Promise<void>((resolve) => (peerEnded = resolve));
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      accepted = socket;
      socket.on("error", () => undefined);
      socket.on("data", (chunk: Buffer) => received.push(chunk));
      socket.on("end", () => peerEnded());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const channel = await SocketChannel.connect("127.0.0.1", port, "slow peer", 2000);
      await until(() => accepted !== undefined, "the peer's side of the connection");
      const bulk = Buffer.alloc(16 << 20, 0x5a); // far more than the kernel takes while the peer does not read
      channel.send(bulk);
      channel.send(Buffer.from("end!"));
      const closing = channel.close();
      accepted?.resume();
      await ended;
      await closing;
      const all = Buffer.concat(received);
      assert.equal(all.length, bulk.length + 4, "every byte sent before close() arrived before the end");
      assert.equal(all.subarray(bulk.length).toString(), "end!");
      assert.equal(channel.usable, false);
    } finally {
      accepted?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("turns a connection reset by the TPM into a transport error of the exchange, never a crash", async () => {
    const server = await peer((socket) =>
      framed(socket, 1, () => (socket as net.Socket & { resetAndDestroy(): void }).resetAndDestroy()),
    );
    const channel = await SocketChannel.connect("127.0.0.1", server.port, "resetting peer", 2000);
    try {
      await assert.rejects(channel.exchange(Buffer.from("a"), fourBytes, 2000), (error: unknown) => {
        assert.ok(tpmError("TPM_TRANSPORT", "resetting peer: read ECONNRESET")(error), String(error));
        assert.equal(((error as Error).cause as NodeJS.ErrnoException).code, "ECONNRESET");
        return true;
      });
    } finally {
      await channel.close();
      await server.close();
    }
  });
});

describe("swtpm transport", () => {
  let tpm: TestTpm;
  let front: TpmFaultFront;

  before(async () => {
    tpm = await startTestTpm();
    front = await startTpmFaultFront(tpm.connection);
  });
  after(async () => {
    await front?.close();
    await tpm?.dispose();
  });

  it("refuses a TPM whose initialisation fails, naming the control port and the result", async () => {
    front.initResult = 9;
    try {
      const { host, port, ctrlPort } = front.connection;
      await assert.rejects(
        SwtpmTransport.open(host, port, ctrlPort, 2000),
        tpmError("TPM_TRANSPORT", `swtpm control ${host}:${ctrlPort}: TPM initialisation failed (result 9)`),
      );
      assert.equal(front.dataConnectionsOpened(), 0, "no data connection after a failed initialisation");
    } finally {
      front.initResult = 0;
    }
  });

  it("names the data port when swtpm does not answer a command in time", async () => {
    front.rule = () => Buffer.from([0x80]); // the start of a response, and nothing more
    const { host, port, ctrlPort } = front.connection;
    const transport = await SwtpmTransport.open(host, port, ctrlPort, 2000);
    try {
      await assert.rejects(
        transport.transmit(Buffer.from("80010000000c000001440000", "hex"), 200),
        tpmError("TPM_TIMEOUT", `swtpm ${host}:${port}: no response within 200 ms`),
      );
    } finally {
      front.rule = undefined;
      await transport.close();
    }
  });

  it("waits for a response that arrives in pieces, up to the size in its header", async () => {
    const response = Buffer.from("8001" + "0000000e" + "00000000" + "0002abcd", "hex");
    front.rule = () => [response.subarray(0, 3), response.subarray(3, 12), response.subarray(12)];
    const { host, port, ctrlPort } = front.connection;
    const transport = await SwtpmTransport.open(host, port, ctrlPort, 2000);
    try {
      assert.deepEqual(
        await transport.transmit(Buffer.from("80010000000c0000017b0002", "hex"), 2000),
        response,
      );
    } finally {
      front.rule = undefined;
      await transport.close();
    }
  });

  it("waits for the whole four-byte answer of the control port", async () => {
    const control = await peer((socket) =>
      framed(socket, 8, () => {
        socket.write(Buffer.from([0, 0]));
        setTimeout(() => socket.write(Buffer.from([0, 0])), 20);
      }),
    );
    try {
      const transport = await SwtpmTransport.open("127.0.0.1", front.connection.port, control.port, 2000);
      assert.equal(transport.usable, true);
      await transport.close();
    } finally {
      await control.close();
    }
  });

  it("opens swtpm by its connection spec", async () => {
    const transport = await openTransport(front.connection, 2000);
    try {
      assert.equal(transport.needsStartup, true);
      assert.equal(transport.usable, true);
      // TPM2_Startup(CLEAR), then TPM2_GetRandom(4): a header, a size and 4 bytes
      const startup = await transport.transmit(Buffer.from("80010000000c000001440000", "hex"), 2000);
      assert.equal(startup.length, 10);
      const response = await transport.transmit(Buffer.from("80010000000c0000017b0004", "hex"), 2000);
      assert.equal(response.length, 16);
      assert.equal(response.readUInt32BE(6), 0);
    } finally {
      await transport.close();
    }
    assert.equal(transport.usable, false);
  });
});

describe("simulator (mssim) transport", () => {
  /** Plays the simulator: platform port answers each signal with `signalAck`; the command port shakes
   *  hands with `version`/`handshakeAck` and answers a command with its own bytes and `commandAck`. */
  async function simulator(options: {
    version?: number;
    handshakeAck?: number;
    signalAck?: number;
    commandAck?: number;
    /** Send each reply in two pieces, 20 ms apart: its first 6 bytes (2 of a 4-byte reply), then the rest. */
    inPieces?: boolean;
  }) {
    const reply = (socket: net.Socket, bytes: Buffer): void => {
      if (!options.inPieces) {
        socket.write(bytes);
        return;
      }
      const split = bytes.length > 6 ? 6 : 2; // a frame's length field, and a bit more, come first
      socket.write(bytes.subarray(0, split));
      setTimeout(() => socket.write(bytes.subarray(split)), 20);
    };
    const signals: number[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      const command = await peer((socket) => {
        let buffered = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          for (;;) {
            if (buffered.length < 4) return;
            const code = buffered.readUInt32BE(0);
            if (code === 15) {
              if (buffered.length < 8) return;
              buffered = buffered.subarray(8);
              reply(socket, u32(options.version ?? 1, 0, options.handshakeAck ?? 0));
            } else if (code === 8) {
              if (buffered.length < 9) return;
              const length = buffered.readUInt32BE(5);
              if (buffered.length < 9 + length) return;
              const body = buffered.subarray(9, 9 + length);
              buffered = buffered.subarray(9 + length);
              reply(socket, Buffer.concat([u32(body.length), body, u32(options.commandAck ?? 0)]));
            } else {
              buffered = buffered.subarray(4);
            }
          }
        });
      });
      const platform = net.createServer((socket) => {
        socket.on("error", () => undefined);
        framed(socket, 4, (request) => {
          signals.push(request.readUInt32BE(0));
          reply(socket, u32(options.signalAck ?? 0));
        });
      });
      const listening = await new Promise<boolean>((resolve) => {
        platform.once("error", () => resolve(false));
        platform.listen(command.port + 1, "127.0.0.1", () => resolve(true));
      });
      if (listening) {
        return {
          port: command.port,
          signals,
          close: async () => {
            await command.close();
            await new Promise<void>((resolve) => platform.close(() => resolve()));
          },
        };
      }
      await command.close();
    }
    throw new Error("no free port pair");
  }

  it("powers the TPM on, shakes hands and hands back the response without its frame", async () => {
    for (const inPieces of [false, true]) {
      const sim = await simulator({ inPieces });
      const transport = await openTransport({ kind: "mssim", host: "127.0.0.1", port: sim.port }, 2000);
      try {
        assert.deepEqual(sim.signals, [1, 11, 20]); // power on, NV on, session end
        assert.equal(transport.needsStartup, true, "a simulator is powered on, not started");
        const command = Buffer.from("80010000000c0000017b0004", "hex");
        assert.deepEqual(await transport.transmit(command, 2000), command, `in pieces: ${inPieces}`);
        assert.equal(transport.usable, true);
      } finally {
        await transport.close();
        await sim.close();
      }
      assert.equal(transport.usable, false);
    }
  });

  it("refuses a handshake with another version or a non-zero acknowledgement", async () => {
    for (const [options, text] of [
      [{ version: 2 }, "version 2, ack 0"],
      [{ handshakeAck: 5 }, "version 1, ack 5"],
    ] as const) {
      const sim = await simulator(options);
      try {
        await assert.rejects(
          MssimTransport.open("127.0.0.1", sim.port, 2000),
          tpmError("TPM_PROTOCOL", `TPM simulator 127.0.0.1:${sim.port}: handshake refused (${text})`),
        );
      } finally {
        await sim.close();
      }
    }
  });

  it("refuses a platform signal that is not acknowledged", async () => {
    const sim = await simulator({ signalAck: 3 });
    try {
      await assert.rejects(
        MssimTransport.open("127.0.0.1", sim.port, 2000),
        tpmError(
          "TPM_PROTOCOL",
          `TPM simulator platform port 127.0.0.1:${sim.port + 1}: signal 1 refused (3)`,
        ),
      );
    } finally {
      await sim.close();
    }
  });

  it("refuses a command the simulator does not acknowledge", async () => {
    const sim = await simulator({ commandAck: 7 });
    const transport = await MssimTransport.open("127.0.0.1", sim.port, 2000);
    try {
      await assert.rejects(
        transport.transmit(Buffer.from("80010000000c0000017b0004", "hex"), 2000),
        tpmError("TPM_PROTOCOL", `TPM simulator 127.0.0.1:${sim.port}: command not acknowledged (7)`),
      );
    } finally {
      await transport.close();
      await sim.close();
    }
  });
});

describe("device transport", () => {
  let dir: string;
  let fifo: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-tpm-transport-"));
    fifo = join(dir, "tpm0");
    execFileSync("mkfifo", [fifo]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the command and hands back exactly what the device answers", async () => {
    const transport = await openTransport({ kind: "device", path: fifo }, 2000);
    try {
      assert.equal(transport.needsStartup, false);
      const command = Buffer.from("80010000000c0000017b0004", "hex");
      const timers = (): number =>
        process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
      const before = timers();
      assert.deepEqual(await transport.transmit(command, 60_000), command);
      assert.equal(timers(), before, "no time-out timer left running after the answer");
      assert.equal(transport.usable, true);
    } finally {
      await transport.close();
    }
    assert.equal(transport.usable, false);
    await transport.close(); // a second close is harmless
  });

  it("answers a silent device with a time-out while its read still waits, then closes it", async () => {
    const transport = await DeviceTransport.open([fifo]);
    const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    const handlesOnFifo = async (): Promise<number> => {
      const fds = await readdir("/proc/self/fd");
      const targets = await Promise.all(fds.map((fd) => readlink(join("/proc/self/fd", fd)).catch(() => "")));
      return targets.filter((target) => target === fifo).length;
    };
    const before = timers();
    // An empty command leaves the FIFO empty: the read waits (in a thread of libuv's pool) as for a TPM that
    // never answers.
    let answered = false;
    const exchange = transport.transmit(Buffer.alloc(0), 200);
    exchange.then(
      () => (answered = true),
      () => (answered = true),
    );
    try {
      await until(() => answered, "the time-out answered while the device stays silent");
      await assert.rejects(exchange, tpmError("TPM_TIMEOUT", `${fifo}: no response within 200 ms`));
      assert.equal(timers(), before, "no timer left running after the time-out");
      assert.equal(transport.usable, false);
      await assert.rejects(
        transport.transmit(Buffer.from("8001", "hex"), 200),
        tpmError("TPM_CLOSED", `${fifo}: device closed`),
      );
      let closed = false;
      void transport.close().then(() => (closed = true));
      await until(() => closed, "close() after the time-out, not waiting for the read");
    } finally {
      // the read still holds its thread: a byte written into the FIFO lets it return
      const writer = await open(fifo, "r+");
      await writer.write(Buffer.from([0]));
      await writer.close();
    }
    for (const deadline = Date.now() + 5000; (await handlesOnFifo()) > 0; await sleep(20)) {
      if (Date.now() > deadline) assert.fail("the device not closed once its read returned");
    }
  });

  it("names every path it tried and why each failed", async () => {
    await assert.rejects(
      DeviceTransport.open([join(dir, "missing"), dir]),
      tpmError(
        "TPM_TRANSPORT",
        `cannot open a TPM device: ${join(dir, "missing")}: no such device; ${dir}: EISDIR`,
      ),
    );
  });

  it("fails a device that cannot be written, then refuses further commands as closed", async () => {
    const transport = await DeviceTransport.open(["/dev/full"]);
    await assert.rejects(transport.transmit(Buffer.from("8001", "hex"), 2000), (error: unknown) => {
      assert.ok(tpmError("TPM_TRANSPORT", /^\/dev\/full: ENOSPC/)(error), String(error));
      assert.equal(
        (error as TpmError).cause && ((error as TpmError).cause as NodeJS.ErrnoException).code,
        "ENOSPC",
      );
      return true;
    });
    assert.equal(transport.usable, false);
    await assert.rejects(
      transport.transmit(Buffer.from("8001", "hex"), 2000),
      tpmError("TPM_CLOSED", "/dev/full: device closed"),
    );
    await transport.close();
  });
});
