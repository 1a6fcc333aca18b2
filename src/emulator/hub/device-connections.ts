// The open device connections and which devices each one is authorized for: granting and revoking a device's
// authorization, and the connected/disconnected events the service sees.
import type { EventEmitter } from "node:events";
import type { AmqpError, Connection, Message, Receiver, Sender } from "rhea";
import { closeLink } from "./amqp-wire.js";
import type { LinkState } from "./link-state.js";
import { emitSafely } from "./service-events.js";
import type { TimerSet } from "./timer-set.js";
import { cancelExpiry, scheduleExpiry } from "./token-expiry.js";
import type { ConnectionEvent } from "./types.js";

export interface Authorization {
  hubHostName: string;
  deviceId: string;
  method: "sas" | "x509";
  expiresAtMs?: number;
  expiryTimer?: NodeJS.Timeout;
}

export interface PeerCertificateInfo {
  sha1: string;
  sha256: string;
  commonName?: string;
  /** The chain verified against the configured client CAs. */
  chainTrusted: boolean;
}

export interface ConnectionState {
  connection: Connection;
  /** deviceId -> authorization (several devices may share one connection, §2.3). */
  authorizations: Map<string, Authorization>;
  links: Map<Sender | Receiver, LinkState>;
  pendingCbsReplies: Message[];
  peer?: PeerCertificateInfo;
  /** The host name the client put into OPEN (the TCP host, without port). */
  openHostName?: string;
  /** Set once a service client (a shared access policy token) authenticated on this connection. */
  service?: { hubHostName: string; expiresAtMs: number };
}

export class DeviceConnections {
  private readonly connections = new Map<Connection, ConnectionState>();

  constructor(
    private readonly timers: TimerSet,
    private readonly events: EventEmitter,
  ) {}

  get size(): number {
    return this.connections.size;
  }

  get(connection: Connection): ConnectionState | undefined {
    return this.connections.get(connection);
  }

  add(state: ConnectionState): void {
    this.connections.set(state.connection, state);
  }

  /** Forgets a connection; false when it is already gone (or replaced). */
  remove(state: ConnectionState): boolean {
    if (this.connections.get(state.connection) !== state) return false;
    this.connections.delete(state.connection);
    return true;
  }

  all(): ConnectionState[] {
    return [...this.connections.values()];
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return this.authorizationsOf(hubHostName, deviceId).length > 0;
  }

  authorizationsOf(hubHostName: string, deviceId: string): [ConnectionState, Authorization][] {
    const hub = hubHostName.toLowerCase();
    const found: [ConnectionState, Authorization][] = [];
    for (const state of this.connections.values()) {
      const authorization = state.authorizations.get(deviceId);
      if (authorization && authorization.hubHostName.toLowerCase() === hub)
        found.push([state, authorization]);
    }
    return found;
  }

  grant(state: ConnectionState, authorization: Authorization): void {
    const wasConnected = this.isConnected(authorization.hubHostName, authorization.deviceId);
    const previous = state.authorizations.get(authorization.deviceId);
    if (previous) cancelExpiry(previous, this.timers);
    state.authorizations.set(authorization.deviceId, authorization);
    if (authorization.expiresAtMs !== undefined)
      scheduleExpiry(authorization, this.timers, (error) => this.revoke(state, authorization, error));
    if (!wasConnected) this.emitConnection(authorization, true);
  }

  revoke(state: ConnectionState, authorization: Authorization, error: AmqpError): void {
    if (state.authorizations.get(authorization.deviceId) !== authorization) return;
    state.authorizations.delete(authorization.deviceId);
    cancelExpiry(authorization, this.timers);
    for (const linkState of [...state.links.values()]) {
      if (linkState.deviceId === authorization.deviceId) closeLink(linkState.link, error);
    }
    // A connection left with no authorized device loses its CBS links too, so that the SDK notices at once
    // (a link detached with an error runs the connection down, §6.2) instead of on its next operation.
    if (state.authorizations.size === 0) {
      for (const linkState of [...state.links.values()]) {
        if (linkState.role === "cbs-request" || linkState.role === "cbs-reply")
          closeLink(linkState.link, error);
      }
    }
    if (!this.isConnected(authorization.hubHostName, authorization.deviceId))
      this.emitConnection(authorization, false);
  }

  /** Drops every authorization of a connection that has ended (its links are already forgotten). */
  releaseAll(state: ConnectionState): void {
    for (const authorization of [...state.authorizations.values()]) {
      state.authorizations.delete(authorization.deviceId);
      cancelExpiry(authorization, this.timers);
      if (!this.isConnected(authorization.hubHostName, authorization.deviceId))
        this.emitConnection(authorization, false);
    }
  }

  private emitConnection(authorization: Authorization, connected: boolean): void {
    const event: ConnectionEvent = {
      hubHostName: authorization.hubHostName,
      deviceId: authorization.deviceId,
      connected,
    };
    emitSafely(this.events, "connection", event);
  }
}
