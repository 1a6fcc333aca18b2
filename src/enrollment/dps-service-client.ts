// The DPS service API through the maintained service SDK (azure-iot-provisioning-service, unmodified). The
// SDK always connects to port 443 of the connection string's host and trusts only the system CAs; an
// https.Agent, which the SDK's HTTP layer accepts as an option, carries the endpoint (host and port) to
// connect to and the extra trusted CA instead. TLS verification stays on. Every call has a deadline.
import { Agent } from "node:https";
import { rootCertificates } from "node:tls";
import { SharedAccessSignature } from "azure-iot-common";
import { RestApiClient } from "azure-iot-http-base";
import { ProvisioningServiceClient } from "azure-iot-provisioning-service";
import type { IndividualEnrollment } from "./enrollment-request.js";
import { parseServiceConnection, type ServiceConnection } from "./service-connection.js";
import { DpsServiceError, serviceErrorOf } from "./service-errors.js";

export type BulkMode = "create" | "update" | "updateIfMatchETag" | "delete";

/** DPS's answer to a bulk operation: the items that failed, by registration id. */
export interface BulkOperationResult {
  isSuccessful: boolean;
  errors: Array<{ registrationId: string; errorCode: number; errorStatus: string }>;
}

export interface QueryPage {
  items: IndividualEnrollment[];
  continuationToken?: string;
}

/** What the enrollment operations need from DPS: one method per service API call. */
export interface DpsEnrollmentService {
  readonly description: string;
  get(registrationId: string): Promise<IndividualEnrollment>;
  /** PUT; with enrollment.etag the service applies it only if the etag still matches (If-Match). */
  createOrUpdate(enrollment: IndividualEnrollment): Promise<IndividualEnrollment>;
  delete(registrationId: string, etag?: string): Promise<void>;
  bulk(mode: BulkMode, enrollments: IndividualEnrollment[]): Promise<BulkOperationResult>;
  query(query: string, pageSize: number, continuationToken?: string): Promise<QueryPage>;
}

export interface DpsServiceClientOptions {
  connectionString: string;
  /** host[:port] to connect to instead of the connection string's HostName (the emulator, a private link). */
  endpoint?: string;
  /** PEM of a CA to trust besides the system CAs. */
  ca?: string;
  /** Deadline of one call. Default 30 s. */
  timeoutMs?: number;
}

const USER_AGENT = "provisio-node-red-azure-iot";
const DEFAULT_TIMEOUT_MS = 30_000;

type SdkCallback<T> = (
  error?: Error | null,
  result?: T,
  response?: { headers?: Record<string, unknown> },
) => void;

export class DpsServiceClient implements DpsEnrollmentService {
  private readonly connection: ServiceConnection;
  private readonly agent: Agent;
  private readonly sdk: ProvisioningServiceClient;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(options: DpsServiceClientOptions) {
    this.connection = parseServiceConnection(options.connectionString, options.endpoint);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const { hostName, keyName, key, connectHost, connectPort } = this.connection;
    // The agent's options win over the request's (node:https merges them in that order): host and port
    // redirect the connection. SNI and the certificate check still use the connection string's host name
    // (node derives them from the Host header), as with a private endpoint.
    this.agent = new Agent({
      host: connectHost,
      port: connectPort,
      keepAlive: true,
      maxSockets: 4,
      ...(options.ca ? { ca: [...rootCertificates, options.ca] } : {}),
    });
    const config = {
      host: hostName,
      // The SDK renews the token per request (an hour ahead); this start expiry is replaced at once.
      sharedAccessSignature: SharedAccessSignature.create(hostName, keyName, key, String(Date.now())),
    };
    const rest = new RestApiClient(config, USER_AGENT);
    rest.setOptions({ http: { agent: this.agent } });
    this.sdk = new ProvisioningServiceClient(config as never, rest as never);
  }

  /** "policy @ host", free of secrets. */
  get description(): string {
    return this.connection.description;
  }

  private get target(): string {
    const { connectHost, connectPort } = this.connection;
    return `DPS service ${connectHost}${connectPort === 443 ? "" : `:${connectPort}`}`;
  }

  /** Runs one SDK call (callback form: the SDK's promise form of bulk never settles) under the deadline. */
  private call<T>(
    what: string,
    start: (callback: SdkCallback<T>) => void,
  ): Promise<{ result: T; headers: Record<string, unknown> }> {
    if (this.closed)
      return Promise.reject(new DpsServiceError("unreachable", `${what}: the DPS service client is closed`));
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(
          new DpsServiceError(
            "timeout",
            `${what} failed: no answer from ${this.target} within ${this.timeoutMs / 1000} s`,
          ),
        );
        // a request without an answer would hold its socket: drop the pooled connections
        this.agent.destroy();
      }, this.timeoutMs);
      const finish: SdkCallback<T> = (error, result, response) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(serviceErrorOf(error, what, this.target));
        else resolve({ result: result as T, headers: response?.headers ?? {} });
      };
      try {
        start(finish);
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  async get(registrationId: string): Promise<IndividualEnrollment> {
    const { result } = await this.call<IndividualEnrollment>(`get enrollment ${registrationId}`, (cb) =>
      this.sdk.getIndividualEnrollment(registrationId, cb as never),
    );
    return result;
  }

  async createOrUpdate(enrollment: IndividualEnrollment): Promise<IndividualEnrollment> {
    const verb = enrollment.etag ? "update" : "create or replace";
    const { result } = await this.call<IndividualEnrollment>(
      `${verb} enrollment ${enrollment.registrationId}`,
      (cb) => this.sdk.createOrUpdateIndividualEnrollment(enrollment as never, cb as never),
    );
    return result;
  }

  async delete(registrationId: string, etag?: string): Promise<void> {
    await this.call<void>(`delete enrollment ${registrationId}`, (cb) =>
      etag
        ? this.sdk.deleteIndividualEnrollment(registrationId, etag, cb as never)
        : this.sdk.deleteIndividualEnrollment(registrationId, cb as never),
    );
  }

  async bulk(mode: BulkMode, enrollments: IndividualEnrollment[]): Promise<BulkOperationResult> {
    const { result } = await this.call<BulkOperationResult>(
      `bulk ${mode} of ${enrollments.length} enrollment(s)`,
      (cb) => this.sdk.runBulkEnrollmentOperation({ mode, enrollments } as never, cb as never),
    );
    return {
      isSuccessful: result?.isSuccessful === true,
      errors: Array.isArray(result?.errors) ? result.errors : [],
    };
  }

  async query(query: string, pageSize: number, continuationToken?: string): Promise<QueryPage> {
    const sdkQuery = this.sdk.createIndividualEnrollmentQuery({ query }, pageSize);
    const { result, headers } = await this.call<IndividualEnrollment[]>("query enrollments", (cb) =>
      continuationToken ? sdkQuery.next(continuationToken, cb as never) : sdkQuery.next(cb as never),
    );
    const next = headers["x-ms-continuation"];
    return {
      items: Array.isArray(result) ? result : [],
      ...(typeof next === "string" && next !== "" ? { continuationToken: next } : {}),
    };
  }

  /** Closes the pooled connections; later calls fail. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }
}
