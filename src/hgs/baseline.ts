export * from "../host/hgs-client/baseline.js"; // temporary: importers move to src/host/hgs-client
