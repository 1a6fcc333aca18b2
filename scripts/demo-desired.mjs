// Sets desired properties of the demo device through the emulator's twin API (Azure's service REST shape).
// Usage: npm run demo:desired -- telemetryInterval=2 [name=value ...]   (values are parsed as JSON when they can be)
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
let service;
try {
  service = JSON.parse(readFileSync(join(root, ".demo", "service.json"), "utf8"));
} catch {
  console.error("The demo is not running (start it with: npm run demo).");
  process.exit(1);
}

const desired = {};
for (const argument of process.argv.slice(2)) {
  const at = argument.indexOf("=");
  if (at <= 0) {
    console.error(`expected name=value, got "${argument}"`);
    process.exit(2);
  }
  const text = argument.slice(at + 1);
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  desired[argument.slice(0, at)] = value;
}
if (Object.keys(desired).length === 0) {
  console.error("usage: npm run demo:desired -- telemetryInterval=2");
  process.exit(2);
}

const fields = Object.fromEntries(
  service.hubServiceConnectionString.split(";").map((part) => {
    const at = part.indexOf("=");
    return [part.slice(0, at), part.slice(at + 1)];
  }),
);
const expiry = Math.floor(Date.now() / 1000) + 300;
const resource = encodeURIComponent(fields.HostName);
const signature = createHmac("sha256", Buffer.from(fields.SharedAccessKey, "base64"))
  .update(`${resource}\n${expiry}`)
  .digest("base64");
const token = `SharedAccessSignature sr=${resource}&sig=${encodeURIComponent(signature)}&se=${expiry}&skn=${fields.SharedAccessKeyName}`;

const url = new URL(
  `twins/${encodeURIComponent(service.deviceId)}?api-version=2021-04-12`,
  service.serviceUrl,
);
const body = JSON.stringify({ properties: { desired } });
const req = request(
  url,
  {
    method: "PATCH",
    ca: readFileSync(service.caFile),
    headers: {
      Authorization: token,
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    },
  },
  (res) => {
    let text = "";
    res.on("data", (chunk) => (text += chunk));
    res.on("end", () => {
      if (res.statusCode !== 200) {
        console.error(`the emulator answered ${res.statusCode}: ${text}`);
        process.exit(1);
      }
      const twin = JSON.parse(text);
      console.log(`desired properties now (version ${twin.properties.desired.$version}):`);
      console.log(JSON.stringify(twin.properties.desired, null, 2));
    });
  },
);
req.on("error", (error) => {
  console.error(`cannot reach the emulator: ${error.message}`);
  process.exit(1);
});
req.end(body);
