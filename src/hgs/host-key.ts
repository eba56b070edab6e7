export * from "../host/hgs-client/host-key.js"; // temporary: importers move to src/host/hgs-client
