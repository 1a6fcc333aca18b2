// The emulator's web page: what the Azure portal shows, for the local hub and DPS.
export { startWebUi, WebUiHostError, type WebUi, type WebUiOptions } from "./server.js";
export type { DeviceView, EnrollmentGroupView, EnrollmentView, WebUiBackend } from "./views.js";
