export * from "../host/hgs-client/errors.js"; // temporary: importers move to src/host/hgs-client
