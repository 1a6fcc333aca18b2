// What the demo's terminal says about the device while it runs: each state change (the provision node's
// status), each desired and reported change (the flow's debug nodes), read from the editor's own event
// socket like the editor does; and every few seconds how many telemetry messages the hub accepted.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// The WebSocket client Node-RED's editor API itself depends on.
const WebSocket = createRequire(require.resolve("@node-red/editor-api"))("ws");

/** Node ids in examples/end-to-end demo.json. */
const PROVISION_NODE = "demo-provision";
const STATE_DEBUG = "demo-state-debug";
const DESIRED_DEBUG = "demo-desired-debug";
const REPORTED_DEBUG = "demo-reported-debug";

const time = () => new Date().toTimeString().slice(0, 8);

/** A debug message's text as one line (objects arrive as JSON text). */
function oneLine(data) {
  try {
    return JSON.stringify(JSON.parse(data.msg));
  } catch {
    return String(data.msg);
  }
}

/**
 * Prints the device's life until stop() is called.
 * @param {{ editorUrl: string, hubService: import("node:events").EventEmitter, deviceId: string,
 *           say: (line: string) => void, telemetryEveryMs?: number }} options
 */
export function watchDevice({ editorUrl, hubService, deviceId, say, telemetryEveryMs = 10_000 }) {
  const line = (what, text) => say(`  ${time()}  ${what.padEnd(9)} ${text}`);
  let lastState;
  let telemetryTotal = 0;
  let telemetryShown = 0;
  let socket;
  let stopped = false;

  const onTelemetry = (record) => {
    if (record.deviceId === deviceId) telemetryTotal++;
  };
  hubService.on("telemetry", onTelemetry);
  const telemetryTimer = setInterval(() => {
    if (telemetryTotal === telemetryShown) return;
    line(
      "telemetry",
      `${telemetryTotal} message(s) accepted by the hub (+${telemetryTotal - telemetryShown})`,
    );
    telemetryShown = telemetryTotal;
  }, telemetryEveryMs);

  const onEvent = ({ topic, data }) => {
    if (topic === `status/${PROVISION_NODE}`) {
      const state = data?.text;
      if (state && state !== lastState) line("device", state);
      lastState = state;
    } else if (topic === "debug" && data?.id === STATE_DEBUG) {
      // The state itself comes from the status above; this adds why, for the failing states.
      const iothub = JSON.parse(oneLine(data));
      if (iothub?.state === "connected" && iothub.hub)
        line("", `hub ${iothub.hub}, device id ${iothub.deviceId}`);
      if (iothub?.error) line("", `why: ${iothub.error}`);
    } else if (topic === "debug" && data?.id === DESIRED_DEBUG) {
      line("desired", oneLine(data));
    } else if (topic === "debug" && data?.id === REPORTED_DEBUG) {
      line("reported", oneLine(data));
    }
  };

  function connect() {
    if (stopped) return;
    socket = new WebSocket(new URL("comms", editorUrl).href.replace(/^http/, "ws"));
    socket.on("open", () => {
      socket.send(JSON.stringify({ subscribe: "status/#" }));
      socket.send(JSON.stringify({ subscribe: "debug" }));
    });
    socket.on("message", (text) => {
      let events;
      try {
        events = JSON.parse(String(text));
      } catch {
        return;
      }
      for (const event of Array.isArray(events) ? events : [events]) {
        try {
          onEvent(event);
        } catch {
          // One odd event must not end the watch.
        }
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (!stopped) setTimeout(connect, 1000);
    });
  }
  connect();

  return function stop() {
    stopped = true;
    clearInterval(telemetryTimer);
    hubService.off("telemetry", onTelemetry);
    socket?.terminate();
  };
}

/** Resolves once the editor answers HTTP (Node-RED listens only after loading its flows). */
export async function editorListening(editorUrl, { timeoutMs = 120_000, exited } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited?.()) throw new Error("Node-RED exited before its editor listened");
    try {
      const answer = await fetch(new URL("settings", editorUrl));
      if (answer.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the Node-RED editor did not answer at ${editorUrl} within ${timeoutMs / 1000} s`);
}
