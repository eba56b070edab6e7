export * from "../host/hgs-client/health.js"; // temporary: importers move to src/host/hgs-client
