// A client certificate that fails its signature check must end in a refusal the device can read, not in a
// broken socket. OpenSSL checks the chain during the handshake; with rejectUnauthorized false the handshake
// goes on, but a failed RSA signature check can leave its error on OpenSSL's per-thread error queue. Node
// then takes that stale error for a failure of the socket's next read, and the connection ends with no
// answer (seen over AMQP with a leaf that names a trusted CA as issuer but was signed by another key).
import type { TLSSocket } from "node:tls";

/**
 * Call when the handshake has ended ('secureConnection'): reading the peer certificate goes through Node's
 * OpenSSL binding, which empties the error queue on return, so the protocol layer gets to check the chain
 * itself and refuse by name.
 */
export function settleClientCertificateCheck(socket: TLSSocket): void {
  socket.getPeerCertificate();
}
