// IoT Hub's MQTT topic grammar as the emulated hub reads and writes it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  c2dTopic,
  parseDevicePublish,
  parsePropertyBag,
  parseSubscription,
  telemetryMessage,
  twinResponseTopic,
} from "../../src/emulator/hub/mqtt-topics.js";

describe("hub MQTT topics", () => {
  it("reads telemetry topics with and without a property bag, decoding names and values", () => {
    assert.deepEqual(parseDevicePublish("devices/d1/messages/events/"), {
      kind: "telemetry",
      deviceId: "d1",
      properties: [],
    });
    assert.deepEqual(parseDevicePublish("devices/d1/messages/events/%24.mid=m1&a%20b=c%2Fd&flag"), {
      kind: "telemetry",
      deviceId: "d1",
      properties: [
        ["$.mid", "m1"],
        ["a b", "c/d"],
        ["flag", ""],
      ],
    });
    assert.deepEqual(parseDevicePublish("devices/d1/messages/events/a=%E0%A4%A"), { kind: "unknown" });
    assert.deepEqual(parseDevicePublish("devices/d1/messages/events/a=1/b=2"), { kind: "unknown" });
  });

  it("reads twin requests and method responses only with a request id", () => {
    assert.deepEqual(parseDevicePublish("$iothub/twin/GET/?$rid=7"), { kind: "twin-get", rid: "7" });
    assert.deepEqual(parseDevicePublish("$iothub/twin/PATCH/properties/reported/?$rid=8&$version=3"), {
      kind: "twin-reported",
      rid: "8",
    });
    assert.deepEqual(parseDevicePublish("$iothub/twin/GET/?foo=1"), { kind: "unknown" });
    assert.deepEqual(parseDevicePublish("$iothub/methods/res/200/?$rid=abc"), {
      kind: "method-response",
      rid: "abc",
      status: 200,
    });
    assert.deepEqual(parseDevicePublish("$iothub/methods/res/2000/?$rid=abc"), { kind: "unknown" });
    assert.deepEqual(parseDevicePublish("devices/d1/messages/devicebound/x"), { kind: "unknown" });
  });

  it("accepts only the hub's subscription filters, C2D only for the connected device", () => {
    assert.equal(parseSubscription("devices/d1/messages/devicebound/#", "d1"), "c2d");
    assert.equal(parseSubscription("devices/d2/messages/devicebound/#", "d1"), undefined);
    assert.equal(parseSubscription("$iothub/twin/res/#", "d1"), "twin-responses");
    assert.equal(parseSubscription("$iothub/twin/PATCH/properties/desired/#", "d1"), "desired");
    assert.equal(parseSubscription("$iothub/methods/POST/#", "d1"), "methods");
    assert.equal(parseSubscription("#", "d1"), undefined);
  });

  it("keeps a C2D property bag in one topic level and round-trips it", () => {
    const topic = c2dTopic("d1", [
      ["$.to", "/devices/d1/messages/devicebound"],
      ["k&=", "v/w x"],
    ]);
    const bag = topic.split("/")[4];
    assert.equal(topic.split("/").length, 5);
    assert.deepEqual(parsePropertyBag(bag ?? ""), [
      ["$.to", "/devices/d1/messages/devicebound"],
      ["k&=", "v/w x"],
    ]);
    assert.equal(twinResponseTopic(204, "r1", 5), "$iothub/twin/res/204/?$rid=r1&$version=5");
  });

  it("maps MQTT system properties to the AMQP fields IoT Hub uses and drops unknown ones", () => {
    const message = telemetryMessage(
      [
        ["$.mid", "m"],
        ["$.cid", "c"],
        ["$.ct", "application/json"],
        ["$.ce", "utf-8"],
        ["$.sub", "thermostat1"],
        ["$.unknown", "x"],
        ["alert", "high"],
      ],
      Buffer.from("{}"),
    );
    assert.equal(message.message_id, "m");
    assert.equal(message.correlation_id, "c");
    assert.equal(message.content_type, "application/json");
    assert.equal(message.content_encoding, "utf-8");
    assert.deepEqual(message.message_annotations, { "dt-subject": "thermostat1" });
    assert.deepEqual(message.application_properties, { alert: "high" });
  });
});
