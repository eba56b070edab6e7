export * from "../host/hgs-client/release.js"; // temporary: importers move to src/host/hgs-client
