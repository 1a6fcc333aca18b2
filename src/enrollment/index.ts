export {
  DpsServiceClient,
  type DpsEnrollmentService,
  type DpsServiceClientOptions,
  type BulkMode,
  type BulkOperationResult,
  type QueryPage,
} from "./dps-service-client.js";
export {
  enrollmentOf,
  enrollmentIdOf,
  EnrollmentRequestError,
  ENROLLMENT_FIELDS,
  type IndividualEnrollment,
} from "./enrollment-request.js";
export {
  runOperation,
  operationOf,
  OPERATIONS,
  DEFAULT_QUERY,
  type EnrollmentOperation,
  type OperationOutcome,
  type OperationRequest,
} from "./enrollment-operations.js";
export { batchSizeOf, MAX_BULK_BATCH, type BulkReport, type BulkItemFailure } from "./bulk-batches.js";
export { DpsServiceError, type ServiceFailureKind } from "./service-errors.js";
export { parseServiceConnection, ServiceConnectionError, splitHostPort } from "./service-connection.js";
