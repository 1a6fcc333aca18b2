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
  var C2D_POLL_MS = 1000;
  var C2D_SHOWN = 20;

  // c2dSent: per device id, the messages sent from this page, newest first ({ request, view }).
  var state = { selectedId: null, editorDeviceId: null, events: null, c2dSent: {} };

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
    resetMethodResult();
    renderC2dMessages();
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

  // ---- direct methods ----

  function showMethodError(message) {
    var box = byId("method-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function resetMethodResult() {
    showMethodError(null);
    setText("method-result", "");
    byId("method-response").hidden = true;
  }

  function invokeMethod(event) {
    event.preventDefault();
    var deviceId = state.selectedId;
    if (deviceId === null) return;
    resetMethodResult();
    var methodName = byId("method-name").value.trim();
    if (!methodName) {
      showMethodError("Give the method's name.");
      return;
    }
    var timeout = Number(byId("method-timeout").value);
    if (!(timeout >= 5 && timeout <= 300)) {
      showMethodError("The response timeout is 5 to 300 seconds.");
      return;
    }
    var payloadText = byId("method-payload").value.trim();
    var payload = null;
    if (payloadText) {
      try {
        payload = JSON.parse(payloadText);
      } catch (error) {
        showMethodError("The payload is not valid JSON: " + error.message);
        return;
      }
    }
    var button = byId("invoke-method");
    button.disabled = true;
    setText("method-result", "Waiting for " + deviceId + " (up to " + timeout + " s)\u2026");
    api(deviceUrl(deviceId) + "/methods", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ methodName: methodName, payload: payload, responseTimeoutInSeconds: timeout }),
    }).then(function (result) {
      if (state.selectedId !== deviceId) return;
      setText("method-result", "Answered " + methodName);
      var status = byId("method-response-status");
      status.textContent = "status " + result.status;
      status.className = "badge " + (result.status >= 200 && result.status < 300 ? "ok" : "bad");
      setText("method-response-payload", json(result.payload));
      byId("method-response").hidden = false;
    }, function (error) {
      if (state.selectedId !== deviceId) return;
      setText("method-result", "");
      showMethodError(methodErrorText(error));
    }).then(function () { button.disabled = false; });
  }

  function methodErrorText(error) {
    var prefix = error.status === 404 && /online/i.test(error.message) ? "Device offline (404): "
      : error.status === 504 ? "No answer in time (504): "
      : error.status ? "Error " + error.status + ": " : "";
    return prefix + (error.message || String(error));
  }

  // ---- cloud-to-device messages ----

  function showC2dError(message) {
    var box = byId("c2d-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  /** "name=value" lines, or a JSON object. */
  function parseProperties(text) {
    var trimmed = text.trim();
    if (!trimmed) return {};
    if (trimmed.charAt(0) === "{") {
      var parsed = JSON.parse(trimmed);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("the properties must be a JSON object");
      return parsed;
    }
    var properties = {};
    trimmed.split(/\r?\n/).forEach(function (line, index) {
      if (!line.trim()) return;
      var at = line.indexOf("=");
      if (at <= 0) throw new Error("line " + (index + 1) + " is not name=value");
      properties[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return properties;
  }

  var C2D_STATE_TEXT = {
    queued: "queued",
    abandoned: "abandoned, will be delivered again",
    completed: "completed",
    rejected: "rejected",
    expired: "expired",
    deadLettered: "dead-lettered (delivery count exceeded)",
  };
  var C2D_STATE_KIND = { queued: "pending", abandoned: "pending", completed: "ok", rejected: "bad", expired: "bad", deadLettered: "bad" };

  function c2dItem(sent) {
    var view = sent.view;
    var props = Object.keys(sent.request.properties).map(function (name) {
      return h("span", { className: "muted" }, name + " = ", sent.request.properties[name]);
    });
    return h("li", { "data-testid": "c2d-message", dataset: { messageId: view.messageId, state: view.state } },
      h("div", { className: "head" },
        badge(C2D_STATE_TEXT[view.state] || view.state, C2D_STATE_KIND[view.state] || "off", "c2d-state"),
        view.feedbackStatusCode ? h("span", { className: "muted", "data-testid": "c2d-feedback" }, "feedback: " + view.feedbackStatusCode) : null,
        view.abandonCount ? h("span", { className: "muted" }, "abandoned " + view.abandonCount + "\u00d7") : null,
        h("span", { className: "mono muted", title: "message id" }, view.messageId),
        h("span", { className: "muted" }, formatTime(view.updatedUtc))),
      props.length ? h.apply(null, ["div", { className: "head" }].concat(props)) : null,
      h("pre", { "data-testid": "c2d-message-body" }, sent.request.body));
  }

  function renderC2dMessages() {
    var list = byId("c2d-messages");
    var sent = state.selectedId === null ? [] : (state.c2dSent[state.selectedId] || []);
    list.replaceChildren.apply(list, sent.slice(0, C2D_SHOWN).map(c2dItem));
    byId("c2d-empty").hidden = sent.length > 0;
  }

  function sendC2d(event) {
    event.preventDefault();
    var deviceId = state.selectedId;
    if (deviceId === null) return;
    showC2dError(null);
    setText("c2d-result", "");
    var properties;
    try {
      properties = parseProperties(byId("c2d-properties").value);
    } catch (error) {
      showC2dError("Application properties: " + error.message);
      return;
    }
    var request = {
      body: byId("c2d-body").value,
      contentType: byId("c2d-content-type").value.trim(),
      ack: byId("c2d-ack").value,
      properties: properties,
    };
    var button = byId("send-c2d");
    button.disabled = true;
    api(deviceUrl(deviceId) + "/messages/devicebound", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    }).then(function (view) {
      var sent = state.c2dSent[deviceId] = state.c2dSent[deviceId] || [];
      sent.unshift({ request: request, view: view });
      sent.length = Math.min(sent.length, C2D_SHOWN);
      setText("c2d-result", "Sent " + view.messageId);
      if (state.selectedId === deviceId) renderC2dMessages();
    }, function (error) {
      showC2dError(error.status ? "Error " + error.status + ": " + error.message : error.message || String(error));
    }).then(function () { button.disabled = false; });
  }

  /** Asks for the state of every message not settled for good yet. */
  function pollC2dStates() {
    Object.keys(state.c2dSent).forEach(function (deviceId) {
      state.c2dSent[deviceId].forEach(function (sent) {
        if (sent.view.final || sent.polling) return;
        sent.polling = true;
        api(deviceUrl(deviceId) + "/messages/devicebound/" + encodeURIComponent(sent.view.messageId)).then(function (view) {
          var changed = view.state !== sent.view.state || view.abandonCount !== sent.view.abandonCount;
          sent.view = view;
          if (changed && state.selectedId === deviceId) renderC2dMessages();
        }, function (error) {
          // Forgotten by the emulator (restarted, or too many since): stop asking.
          if (error && error.status === 404) sent.view.final = true;
          else reportOffline(error);
        }).then(function () { sent.polling = false; });
      });
    });
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
    byId("method-form").addEventListener("submit", invokeMethod);
    byId("c2d-form").addEventListener("submit", sendC2d);
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
    setInterval(pollC2dStates, C2D_POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
`;
