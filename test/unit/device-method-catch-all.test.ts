// The catch-all for direct methods finds, on each transport class of the unmodified SDK, the emitter its
// onDeviceMethod listens on, sees exactly the calls whose name has no listener, and leaves the emitter as it
// was when removed. (No network: the transports are made, not connected.)
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { Client } from "azure-iot-device";
import { Amqp, AmqpWs } from "azure-iot-device-amqp";
import { Mqtt, MqttWs } from "azure-iot-device-mqtt";
import {
  interceptUnhandledMethods,
  methodEmitterOf,
  type TransportMethodRequest,
} from "../../src/device/method-catch-all.js";

const CONNECTION_STRING = `HostName=hub.example;DeviceId=dev-1;SharedAccessKey=${Buffer.from("k".repeat(32)).toString("base64")}`;

const transports = { Amqp, AmqpWs, Mqtt, MqttWs } as const;

function request(methodName: string): TransportMethodRequest {
  return { methods: { methodName }, requestId: "r-1", body: Buffer.from("{}") };
}

describe("direct-method catch-all on the SDK's transports", () => {
  for (const [name, Transport] of Object.entries(transports)) {
    it(`${name}: finds the emitter onDeviceMethod listens on, and takes only names without a listener`, () => {
      const client = Client.fromConnectionString(CONNECTION_STRING, Transport);
      const transport = client._transport;
      const named: unknown[] = [];
      transport.onDeviceMethod("restart", (request: unknown) => named.push(request));
      const emitter = methodEmitterOf(transport);
      assert.ok(emitter instanceof EventEmitter);
      assert.equal(emitter.listenerCount("method_restart"), 1, "the SDK's own listener is on this emitter");

      const unhandled: TransportMethodRequest[] = [];
      const restore = interceptUnhandledMethods(emitter, (request) => unhandled.push(request));
      assert.equal(emitter.emit("method_restart", request("restart")), true);
      emitter.emit("method_recipe", request("recipe"));
      const other: unknown[] = [];
      emitter.on("other", (value) => other.push(value));
      emitter.emit("other", 1);
      assert.equal(named.length, 1);
      assert.deepEqual(
        unhandled.map((r) => r.methods?.methodName),
        ["recipe"],
      );
      assert.deepEqual(other, [1]);

      restore();
      assert.equal(Object.prototype.hasOwnProperty.call(emitter, "emit"), false);
      assert.equal(emitter.emit("method_recipe", request("recipe")), false);
      assert.equal(unhandled.length, 1);
    });
  }
});
