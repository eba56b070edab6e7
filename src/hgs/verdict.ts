export * from "../host/hgs-client/verdict.js"; // temporary: importers move to src/host/hgs-client
