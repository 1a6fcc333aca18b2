// The page's markup. Static: every device-provided value is filled in by page-script.ts as text nodes.
// The ids and data-testid attributes are the contract of the browser tests; keep them stable.
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>azure-iot-local: local IoT Hub and DPS</title>
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header class="top">
  <span class="brand">azure-iot-local</span>
  <span class="hub" id="hub-name" data-testid="hub-name"></span>
  <span class="live" id="live-status" data-testid="live-status" data-state="connecting">connecting</span>
</header>
<div id="token-missing" data-testid="token-missing" class="notice" hidden>
  <strong>No access token.</strong> Open the link the emulator printed: the <code>"ui"</code> field of its
  ready line, <code>http://127.0.0.1:PORT/?token=&hellip;</code>. The token changes at every start.
</div>
<main id="app">
  <section class="panel" aria-labelledby="devices-title">
    <h2 id="devices-title">Devices</h2>
    <table class="grid">
      <thead><tr><th>Device ID</th><th>Status</th><th>Connection</th><th>Attestation</th><th>Enrollment</th><th>Last message</th></tr></thead>
      <tbody id="devices" data-testid="devices"></tbody>
    </table>
    <p id="devices-empty" class="muted" hidden>No devices yet: provision one through DPS.</p>
  </section>
  <section class="panel" id="device-detail" data-testid="device-detail" aria-labelledby="device-title" hidden>
    <h2 id="device-title"></h2>
    <div class="columns">
      <div>
        <h3>Telemetry <span class="muted">(newest first, live)</span></h3>
        <p id="telemetry-empty" class="muted">No messages yet.</p>
        <ol id="telemetry" data-testid="telemetry" class="telemetry"></ol>
      </div>
      <div>
        <h3>Device twin</h3>
        <h4>Desired <span id="twin-desired-version" class="version"></span></h4>
        <pre id="twin-desired" data-testid="twin-desired" class="json"></pre>
        <h4>Reported <span id="twin-reported-version" class="version"></span></h4>
        <pre id="twin-reported" data-testid="twin-reported" class="json"></pre>
        <h4><label for="desired-editor">Update desired properties</label></h4>
        <p class="muted">A JSON merge patch: the keys given are set, <code>null</code> removes a key.</p>
        <textarea id="desired-editor" data-testid="desired-editor" spellcheck="false" rows="8"></textarea>
        <div class="actions">
          <button id="update-desired" data-testid="update-desired" type="button">Update desired</button>
          <span id="desired-result" data-testid="desired-result" role="status"></span>
        </div>
        <p id="desired-error" data-testid="desired-error" class="error" role="alert" hidden></p>
      </div>
    </div>
    <div class="columns commands">
      <form id="method-form" data-testid="method-form" class="command" novalidate>
        <h3>Direct method</h3>
        <div class="field-row">
          <label for="method-name">Method name</label>
          <input id="method-name" data-testid="method-name" type="text" maxlength="128" autocomplete="off" spellcheck="false" required>
        </div>
        <div class="field-row">
          <label for="method-timeout">Response timeout (s)</label>
          <input id="method-timeout" data-testid="method-timeout" type="number" min="5" max="300" step="1" value="30">
        </div>
        <label for="method-payload">Payload <span class="muted">(JSON)</span></label>
        <textarea id="method-payload" data-testid="method-payload" spellcheck="false" rows="5">{}</textarea>
        <div class="actions">
          <button id="invoke-method" data-testid="invoke-method" type="submit">Invoke method</button>
          <span id="method-result" data-testid="method-result" role="status"></span>
        </div>
        <p id="method-error" data-testid="method-error" class="error" role="alert" hidden></p>
        <div id="method-response" data-testid="method-response" hidden>
          <h4>Response <span id="method-response-status" data-testid="method-response-status" class="badge"></span></h4>
          <pre id="method-response-payload" data-testid="method-response-payload" class="json"></pre>
        </div>
      </form>
      <form id="c2d-form" data-testid="c2d-form" class="command" novalidate>
        <h3>Cloud-to-device message</h3>
        <label for="c2d-body">Body</label>
        <textarea id="c2d-body" data-testid="c2d-body" spellcheck="false" rows="4"></textarea>
        <div class="field-row">
          <label for="c2d-content-type">Content type</label>
          <input id="c2d-content-type" data-testid="c2d-content-type" type="text" value="application/json" list="c2d-content-types" autocomplete="off" spellcheck="false">
          <datalist id="c2d-content-types"><option value="application/json"><option value="text/plain"><option value="application/octet-stream"></datalist>
        </div>
        <div class="field-row">
          <label for="c2d-ack">Delivery feedback</label>
          <select id="c2d-ack" data-testid="c2d-ack">
            <option value="none">none</option>
            <option value="positive">positive (completed)</option>
            <option value="negative">negative (rejected, expired, dead-lettered)</option>
            <option value="full">full</option>
          </select>
        </div>
        <label for="c2d-properties">Application properties <span class="muted">(one <code>name=value</code> a line, or a JSON object)</span></label>
        <textarea id="c2d-properties" data-testid="c2d-properties" spellcheck="false" rows="3"></textarea>
        <div class="actions">
          <button id="send-c2d" data-testid="send-c2d" type="submit">Send message</button>
          <span id="c2d-result" data-testid="c2d-result" role="status"></span>
        </div>
        <p id="c2d-error" data-testid="c2d-error" class="error" role="alert" hidden></p>
        <h4>Sent from this page <span class="muted">(newest first)</span></h4>
        <p id="c2d-empty" class="muted">None yet.</p>
        <ol id="c2d-messages" data-testid="c2d-messages" class="sent"></ol>
      </form>
    </div>
  </section>
  <section class="panel" aria-labelledby="enrollments-title">
    <h2 id="enrollments-title">Enrollments <span class="muted">(DPS, read-only)</span></h2>
    <h3>Individual enrollments</h3>
    <table class="grid">
      <thead><tr><th>Registration ID</th><th>Device ID</th><th>Attestation</th><th>Provisioning</th><th>Registration</th><th>Assigned hub</th></tr></thead>
      <tbody id="individual-enrollments" data-testid="individual-enrollments"></tbody>
    </table>
    <h3>Enrollment groups</h3>
    <table class="grid">
      <thead><tr><th>Group ID</th><th>Attestation</th><th>Provisioning</th><th>Registrations</th></tr></thead>
      <tbody id="enrollment-groups" data-testid="enrollment-groups"></tbody>
    </table>
  </section>
</main>
</body>
</html>
`;
