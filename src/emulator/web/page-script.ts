// The page's script (served as /ui/app.js: the CSP allows no inline script). Plain browser JavaScript, no
// framework. Device-provided text (ids, telemetry bodies, property names and values) is only ever put in the
// page as text nodes (textContent / createTextNode), never parsed as HTML.
// Kept as String.raw so its backslashes reach the browser unchanged; it must not contain backticks or "${".
export const PAGE_SCRIPT = String.raw`"use strict";
(function () {
  var TOKEN_KEY = "azure-iot-local.ui-token";
  var DEVICES_REFRESH_MS = 5000;
  var TWIN_REFRESH_MS = 3000;
  var ENROLLMENTS_REFRESH_MS = 10000;
  var TELEMETRY_SHOWN = 50;

  var state = { selectedId: null, editorDeviceId: null, events: null };

  function byId(id) { return document.getElementById(id); }

  // The token arrives once in the URL; keep it for this tab and take it out of the address bar and history.
  function takeToken() {
    var url = new URL(window.location.href);
    var fromUrl = url.searchParams.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }
  var token = takeToken();

  /** An element whose children are nodes or text: strings always become text nodes. */
  function h(tag, props) {
    var node = document.createElement(tag);
    var names = Object.keys(props || {});
    for (var i = 0; i < names.length; i++) {
      var name = names[i];
      var value = props[name];
      if (value === undefined || value === null) continue;
      if (name === "className") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else if (name === "onkeydown") node.addEventListener("keydown", value);
      else node.setAttribute(name, String(value));
    }
    for (var j = 2; j < arguments.length; j++) {
      var child = arguments[j];
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text) { byId(id).textContent = text; }

  function showTokenMissing() {
    byId("token-missing").hidden = false;
    byId("app").hidden = true;
    setLive("offline", "no access token");
  }

  function setLive(stateName, text) {
    var badge = byId("live-status");
    badge.dataset.state = stateName;
    badge.textContent = text;
  }

  function ApiError(message, status) { this.message = message; this.status = status; }

  function api(path, init) {
    init = init || {};
    var headers = Object.assign({ Authorization: "Bearer " + token }, init.headers || {});
    return fetch(path, { method: init.method || "GET", headers: headers, body: init.body, cache: "no-store" })
      .then(function (response) {
        return response.text().then(function (text) {
          var body;
          try { body = text ? JSON.parse(text) : undefined; } catch (e) { body = undefined; }
          if (response.status === 401) showTokenMissing();
          if (!response.ok) {
            var message = body && body.error && body.error.message ? body.error.message : "HTTP " + response.status;
            throw new ApiError(message, response.status);
          }
          return body;
        });
      });
  }

  function deviceUrl(id) { return "/ui/api/devices/" + encodeURIComponent(id); }

  function formatTime(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function json(value) { return JSON.stringify(value, null, 2); }

  var ATTESTATION = { tpm: "TPM", symmetricKey: "Symmetric key", x509: "X.509" };
  var AUTHENTICATION = { sas: "SAS key", selfSigned: "X.509 self-signed", certificateAuthority: "X.509 CA-signed" };

  function attestationLabel(device) {
    if (device.attestation) return ATTESTATION[device.attestation] || device.attestation;
    return (AUTHENTICATION[device.authentication] || device.authentication) + " (hub only)";
  }

  function badge(text, kind, testid) {
    return h("span", { className: "badge " + kind, "data-testid": testid }, text);
  }

  // ---- devices ----

  function renderDevices(payload) {
    setText("hub-name", payload.hubHostName);
    var rows = payload.devices.map(function (device) {
      var enrollment = device.enrollment
        ? (device.enrollment.kind === "group" ? "group " : "individual ") + device.enrollment.id
        : "\u2014";
      return h("tr", {
          dataset: { deviceId: device.deviceId, connected: String(device.connected), status: device.status },
          tabindex: "0",
          "aria-selected": String(device.deviceId === state.selectedId),
          onclick: function () { select(device.deviceId); },
          onkeydown: function (event) { if (event.key === "Enter") select(device.deviceId); },
        },
        h("td", { className: "mono", "data-testid": "device-id" }, device.deviceId),
        h("td", {}, badge(device.status, device.status === "enabled" ? "ok" : "bad", "device-status")),
        h("td", {}, badge(device.connected ? "Connected" : "Disconnected", device.connected ? "ok" : "off", "device-connection")),
        h("td", { "data-testid": "device-attestation" }, attestationLabel(device)),
        h("td", { className: "mono", "data-testid": "device-enrollment" }, enrollment),
        h("td", { "data-testid": "device-last-message" }, formatTime(device.lastTelemetryUtc) || "\u2014"));
    });
    byId("devices").replaceChildren.apply(byId("devices"), rows);
    byId("devices-empty").hidden = rows.length > 0;
    if (state.selectedId !== null && !payload.devices.some(function (d) { return d.deviceId === state.selectedId; })) {
      state.selectedId = null;
      byId("device-detail").hidden = true;
    }
  }

  function refreshDevices() {
    return api("/ui/api/devices").then(renderDevices, reportOffline);
  }

  var devicesRefreshPending = false;
  /** Many events in a burst cause one refresh. */
  function refreshDevicesSoon() {
    if (devicesRefreshPending) return;
    devicesRefreshPending = true;
    setTimeout(function () { devicesRefreshPending = false; refreshDevices(); }, 250);
  }

  // ---- one device ----

  function select(deviceId) {
    state.selectedId = deviceId;
    var rows = byId("devices").querySelectorAll("tr");
    for (var i = 0; i < rows.length; i++) rows[i].setAttribute("aria-selected", String(rows[i].dataset.deviceId === deviceId));
    history.replaceState(null, "", window.location.pathname + "#device=" + encodeURIComponent(deviceId));
    byId("device-detail").hidden = false;
    setText("device-title", deviceId);
    byId("device-detail").dataset.deviceId = deviceId;
    return api(deviceUrl(deviceId) + "?limit=" + TELEMETRY_SHOWN).then(function (detail) {
      if (state.selectedId !== deviceId) return;
      renderTelemetry(detail.telemetry);
      renderTwin(detail.twin);
      if (state.editorDeviceId !== deviceId) fillEditor(detail.twin);
    }, reportOffline);
  }

  function telemetryItem(record) {
    var props = Object.keys(record.properties || {}).map(function (name) {
      return h("span", { "data-testid": "telemetry-property" }, h("b", {}, name), " = ", record.properties[name]);
    });
    var system = record.systemProperties || {};
    var extras = ["messageId", "contentType", "component"].filter(function (name) { return system[name]; })
      .map(function (name) { return h("span", { className: "muted" }, name + " = ", system[name]); });
    var body;
    if (record.body === null) body = "(binary, base64) " + record.bodyBase64;
    else if (typeof record.body === "string") body = record.body;
    else body = json(record.body);
    return h("li", { "data-testid": "telemetry-message" },
      h("div", { className: "when", title: record.enqueuedTimeUtc }, formatTime(record.enqueuedTimeUtc)),
      props.length || extras.length ? h.apply(null, ["div", { className: "props" }].concat(props, extras)) : null,
      h("pre", { "data-testid": "telemetry-body" }, body));
  }

  function renderTelemetry(records) {
    var list = byId("telemetry");
    list.replaceChildren.apply(list, records.slice(0, TELEMETRY_SHOWN).map(telemetryItem));
    byId("telemetry-empty").hidden = records.length > 0;
  }

  function addTelemetry(record) {
    var list = byId("telemetry");
    list.insertBefore(telemetryItem(record), list.firstChild);
    while (list.children.length > TELEMETRY_SHOWN) list.removeChild(list.lastChild);
    byId("telemetry-empty").hidden = true;
  }

  function renderTwin(twin) {
    var desired = twin.properties.desired;
    var reported = twin.properties.reported;
    setText("twin-desired-version", "$version " + desired.$version);
    setText("twin-reported-version", "$version " + reported.$version);
    setText("twin-desired", json(desired));
    setText("twin-reported", json(reported));
  }

  /** The editor starts from the current desired properties, without the service's own keys. */
  function fillEditor(twin) {
    var editable = {};
    var desired = twin.properties.desired;
    Object.keys(desired).forEach(function (name) { if (name !== "$version" && name !== "$metadata") editable[name] = desired[name]; });
    byId("desired-editor").value = json(editable);
    state.editorDeviceId = twin.deviceId;
    showDesiredError(null);
    setText("desired-result", "");
  }

  function showDesiredError(message) {
    var box = byId("desired-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function updateDesired() {
    var deviceId = state.selectedId;
    if (deviceId === null) return;
    setText("desired-result", "");
    var patch;
    try {
      patch = JSON.parse(byId("desired-editor").value);
    } catch (error) {
      showDesiredError("Not valid JSON: " + error.message);
      return;
    }
    if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
      showDesiredError("The patch must be a JSON object, for example {\"interval\": 5}.");
      return;
    }
    var button = byId("update-desired");
    button.disabled = true;
    showDesiredError(null);
    api(deviceUrl(deviceId) + "/twin/desired", {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(patch),
    }).then(function (twin) {
      if (state.selectedId === deviceId) renderTwin(twin);
      setText("desired-result", "Sent: desired $version " + twin.properties.desired.$version);
    }, function (error) {
      showDesiredError(error.message || String(error));
    }).then(function () { button.disabled = false; });
  }

  function refreshTwin() {
    var deviceId = state.selectedId;
    if (deviceId === null || document.hidden) return;
    api(deviceUrl(deviceId) + "/twin").then(function (twin) {
      if (state.selectedId === deviceId) renderTwin(twin);
    }, reportOffline);
  }

  // ---- enrollments ----

  function registrationText(registration) {
    if (!registration) return "not registered";
    return registration.status + (registration.errorMessage ? ": " + registration.errorMessage : "");
  }

  function initialTwin(enrollment) {
    if (!enrollment.initialTwin) return null;
    return h("details", {}, h("summary", {}, "initial twin"), h("pre", {}, json(enrollment.initialTwin)));
  }

  function renderEnrollments(payload) {
    var individual = payload.individual.map(function (e) {
      return h("tr", { dataset: { registrationId: e.registrationId } },
        h("td", { className: "mono" }, e.registrationId, initialTwin(e)),
        h("td", { className: "mono" }, e.deviceId || (e.registration && e.registration.deviceId) || "\u2014"),
        h("td", {}, ATTESTATION[e.attestation] || e.attestation),
        h("td", {}, e.provisioningStatus || "enabled"),
        h("td", {}, registrationText(e.registration)),
        h("td", { className: "mono" }, (e.registration && e.registration.assignedHub) || e.iotHubHostName || "\u2014"));
    });
    var groups = payload.groups.map(function (g) {
      var registrations = g.registrations.length === 0 ? "none" : h.apply(null, ["ul", {}].concat(g.registrations.map(function (r) {
        return h("li", { className: "mono" }, r.registrationId + (r.deviceId ? " \u2192 " + r.deviceId : "") + " (" + registrationText(r) + ")");
      })));
      return h("tr", { dataset: { enrollmentGroupId: g.enrollmentGroupId } },
        h("td", { className: "mono" }, g.enrollmentGroupId, initialTwin(g)),
        h("td", {}, ATTESTATION[g.attestation] || g.attestation),
        h("td", {}, g.provisioningStatus || "enabled"),
        h("td", {}, registrations));
    });
    var empty = function (columns) { return [h("tr", {}, h("td", { colspan: columns, className: "muted" }, "none"))]; };
    var individualBody = byId("individual-enrollments");
    individualBody.replaceChildren.apply(individualBody, individual.length ? individual : empty(6));
    var groupsBody = byId("enrollment-groups");
    groupsBody.replaceChildren.apply(groupsBody, groups.length ? groups : empty(4));
  }

  function refreshEnrollments() {
    if (document.hidden) return;
    api("/ui/api/enrollments").then(renderEnrollments, reportOffline);
  }

  // ---- live updates ----

  function reportOffline(error) {
    if (error && error.status === 401) return;
    if (!error || error.status === undefined) setLive("offline", "emulator not reachable");
  }

  function openEvents() {
    var events = new EventSource("/ui/api/events?token=" + encodeURIComponent(token));
    state.events = events;
    events.onopen = function () { setLive("live", "live"); refreshDevices(); };
    events.onerror = function () {
      setLive(events.readyState === EventSource.CLOSED ? "offline" : "connecting", events.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
    };
    events.addEventListener("telemetry", function (event) {
      var record = JSON.parse(event.data);
      if (record.deviceId === state.selectedId) addTelemetry(record);
      refreshDevicesSoon();
    });
    events.addEventListener("connection", function () { refreshDevicesSoon(); });
  }

  function start() {
    byId("update-desired").addEventListener("click", updateDesired);
    if (!token) {
      showTokenMissing();
      return;
    }
    var fromHash = /^#device=(.+)$/.exec(window.location.hash);
    refreshDevices().then(function () {
      if (fromHash) {
        var id;
        try { id = decodeURIComponent(fromHash[1]); } catch (e) { id = null; }
        var rows = byId("devices").querySelectorAll("tr");
        for (var i = 0; i < rows.length; i++) if (id !== null && rows[i].dataset.deviceId === id) select(id);
      }
    });
    refreshEnrollments();
    openEvents();
    setInterval(function () { if (!document.hidden) refreshDevices(); }, DEVICES_REFRESH_MS);
    setInterval(refreshTwin, TWIN_REFRESH_MS);
    setInterval(refreshEnrollments, ENROLLMENTS_REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
`;
