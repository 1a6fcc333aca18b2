// Device configuration node: owns the one DeviceSession of a device, shared by the flow nodes that use it
// (register/deregister, as Node-RED core's MQTT broker node). Status and events fan out from here.
import { join } from "node:path";
import type { NodeAPI } from "node-red";
import {
  DeviceSession,
  JsonFileRegistrationStore,
  describeError,
  type RegistrationStore,
  type SessionStateEvent,
} from "../device/index.js";
import { sessionConfigOf, type DeviceCredentials, type DeviceNodeDef } from "./shared/device-config.js";
import type { DeviceConfigNode, DeviceUser } from "./shared/device-user.js";
import type { DpsConfigNode } from "./shared/dps-config.js";
import { errorText, localized, translate } from "./shared/messages.js";
import { statusFor } from "./shared/status.js";
import type { TpmConfigNode } from "./shared/tpm-config.js";

type DeviceNode = DeviceConfigNode & { credentials: DeviceCredentials };

export = function register(RED: NodeAPI): void {
  // One registration cache per runtime, so DPS results survive restarts without two writers on one file.
  let registrationStore: RegistrationStore | undefined;
  const sharedStore = (): RegistrationStore | undefined => {
    const userDir = (RED.settings as { userDir?: string }).userDir;
    if (!userDir) return undefined;
    registrationStore ??= new JsonFileRegistrationStore(join(userDir, "azure-iot-registrations.json"));
    return registrationStore;
  };

  /** The device's outbox log in the user folder, unless it is kept in memory (or there is no user folder). */
  const outboxFileOf = (def: DeviceNodeDef): string | undefined => {
    const userDir = (RED.settings as { userDir?: string }).userDir;
    if (def.outboxStorage === "memory" || !userDir) return undefined;
    return join(userDir, "azure-iot-outbox", `${def.id.replace(/[^A-Za-z0-9_.-]/g, "_")}.log`);
  };

  function AzureIotDeviceNode(this: DeviceNode, def: DeviceNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const users = new Set<DeviceUser>();
    let session: DeviceSession | undefined;
    let configError: Error | undefined;
    let closing = false;

    const statusOf = (event: SessionStateEvent) => {
      const view = statusFor(event);
      const text = translate(RED, `azure-iot.status.${view.key}`, view.params);
      // Messages lost to a full outbox stay visible in every status after, not only in the log: "dropped" when
      // the oldest give way, "refused" when new ones are turned away.
      const dropped = session?.droppedCount ?? 0;
      const lossKey = def.outboxOverflow === "reject-new" ? "refused" : "dropped";
      return {
        fill: view.fill,
        shape: view.shape,
        text:
          dropped > 0
            ? `${text} · ${translate(RED, `azure-iot.status.${lossKey}`, { count: dropped })}`
            : text,
      };
    };

    function createSession(): DeviceSession | undefined {
      if (session || configError) return session;
      try {
        const config = sessionConfigOf(
          def,
          node.credentials ?? {},
          def.dps ? (RED.nodes.getNode(def.dps) as DpsConfigNode | undefined) : undefined,
          def.tpm ? (RED.nodes.getNode(def.tpm) as TpmConfigNode | undefined) : undefined,
          // Node-RED core's "http proxy" node: url, noproxy and credentials (username, password).
          def.proxyMode === "node" && def.proxy ? (RED.nodes.getNode(def.proxy) ?? undefined) : undefined,
        );
        const store = sharedStore();
        if (store) config.options = { ...config.options, registrationStore: store };
        const outboxFile = outboxFileOf(def);
        if (outboxFile) config.options = { ...config.options, outboxFile };
        session = new DeviceSession(config);
      } catch (error) {
        configError = localized(RED, error instanceof Error ? error : new Error(String(error)));
        return undefined;
      }
      session.on("state", (event) => {
        for (const user of users) {
          user.node.status(statusOf(event));
          safely(() => user.onState?.(event));
        }
        if (event.state === "error" && event.error) node.warn(event.error);
      });
      session.on("twin", (desired) => users.forEach((user) => safely(() => user.onTwin?.(desired))));
      session.on("desired", (patch) => users.forEach((user) => safely(() => user.onDesired?.(patch))));
      const owned = session;
      // Damaged records skipped when the outbox on disk was opened: said once, with their number.
      if (session.outboxCorruptRecords > 0) {
        node.warn(errorText(RED, "outboxCorrupt", { count: session.outboxCorruptRecords }));
      }
      session.on("dropped", (drop) => {
        const policy = translate(
          RED,
          `azure-iot-device.overflow.${drop.policy === "reject-new" ? "rejectNew" : "dropOldest"}`,
        );
        node.warn(
          errorText(RED, "outboxFull", { size: drop.outboxSize, dropped: drop.droppedTotal, policy }),
        );
        for (const user of users) user.node.status(statusOf(owned.status));
      });
      session.on("paused", (pause) => {
        const key = { throttled: "throttled", "quota-exceeded": "quotaExceeded", "hub-error": "hubError" }[
          pause.reason
        ];
        const text = translate(RED, `azure-iot.status.${key}`, {
          seconds: Math.max(1, Math.round(pause.retryInMs / 1000)),
        });
        for (const user of users) user.node.status({ fill: "yellow", shape: "dot", text });
      });
      session.on("resumed", () => {
        for (const user of users) user.node.status(statusOf(owned.status));
      });
      session.on("unsent", (count) => node.warn(errorText(RED, "unsent", { count })));
      session.on("methodNotImplemented", (method) =>
        node.warn(errorText(RED, "methodNotImplemented", { method })),
      );
      session.on("kept", (count) => node.log(errorText(RED, "kept", { count })));
      session.on("warning", (error) => node.debug(describeError(error)));
      return session;
    }

    function closeSession(): Promise<void> {
      const current = session;
      session = undefined;
      if (!current) return Promise.resolve();
      return current.close().catch((error: unknown) => {
        node.warn(errorText(RED, "closing", { reason: describeError(error) }));
      });
    }

    function safely(action: () => void): void {
      try {
        action();
      } catch (error) {
        node.error(errorText(RED, "flowNodeFailed", { reason: describeError(error) }));
      }
    }

    // Decided once the deployed flows have started, so every node of the deploy has registered: provision
    // nodes decide whether to connect on deploy; without any, the telemetry and twin nodes need the connection.
    function decideStart(): void {
      if (closing || !session) return;
      const provisionNodes = [...users].filter((user) => user.kind === "provision");
      const connect =
        provisionNodes.length === 0
          ? users.size > 0
          : provisionNodes.some((user) => user.connectOnDeploy !== false);
      if (connect) session.start();
    }

    node.register = (user: DeviceUser): Error | undefined => {
      users.add(user);
      const current = createSession();
      if (!current) {
        user.node.status({ fill: "red", shape: "dot", text: translate(RED, "azure-iot.status.error") });
        return configError;
      }
      user.node.status(statusOf(current.status));
      return undefined;
    };

    // As Node-RED's MQTT broker node: the connection goes when its last user is removed from the flows.
    node.deregister = (user: DeviceUser, removed: boolean): Promise<void> => {
      users.delete(user);
      return removed && users.size === 0 && !closing ? closeSession() : Promise.resolve();
    };

    RED.events.on("flows:started", decideStart);

    Object.defineProperty(node, "session", { get: () => session });
    node.statusText = (key, params) => translate(RED, `azure-iot.status.${key}`, params);

    node.on("close", (_removed: boolean, done: () => void) => {
      closing = true;
      RED.events.removeListener("flows:started", decideStart);
      void closeSession().then(done);
    });
  }

  RED.nodes.registerType<DeviceNode, DeviceNodeDef, unknown, DeviceCredentials>(
    "provisio-azure-device",
    AzureIotDeviceNode,
    {
      credentials: {
        connectionString: { type: "password" },
        hubCaPem: { type: "text" },
        symmetricKey: { type: "password" },
        groupKey: { type: "password" },
        certPem: { type: "text" },
        keyPem: { type: "password" },
        passphrase: { type: "password" },
      },
    },
  );
};
