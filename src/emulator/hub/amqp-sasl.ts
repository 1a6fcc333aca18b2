// SASL mechanisms the hub offers (docs/hub-amqp-protocol.md §1.3). The Node SDK sends no SASL header at all; the
// C SDK's CBS mode negotiates MSSBCBS, Microsoft's "authenticate later over $cbs" mechanism: an empty
// sasl-init, an OK outcome, then put-token on the $cbs link as usual. ANONYMOUS stays offered so rhea's
// selective transport keeps accepting clients without SASL (X.509 devices, the Node SDK).
import type { Container } from "rhea";

/** rhea's server mechanism contract: start(initialResponse, hostname), step(response), outcome, username. */
interface ServerMechanism {
  outcome: boolean | undefined;
  username: string | undefined;
  start(initialResponse: Buffer | undefined, hostname: string | undefined): undefined;
  step(response: Buffer | undefined): undefined;
}

/** Grants the SASL layer; no identity yet, the device is authorized per link by its CBS token. */
class DeferToCbsMechanism implements ServerMechanism {
  outcome: boolean | undefined;
  username: string | undefined;

  constructor(private readonly name: string) {}

  start(): undefined {
    this.outcome = true;
    this.username = this.name;
    return undefined;
  }

  step(): undefined {
    // Neither mechanism has a second round.
    this.outcome = false;
    return undefined;
  }
}

/** Offers MSSBCBS then ANONYMOUS on every connection of `container`, in that order. */
export function offerHubSaslMechanisms(container: Container): void {
  const mechanisms = container.sasl_server_mechanisms as unknown as Record<string, () => ServerMechanism>;
  mechanisms.MSSBCBS = () => new DeferToCbsMechanism("MSSBCBS");
  mechanisms.ANONYMOUS = () => new DeferToCbsMechanism("anonymous");
}
