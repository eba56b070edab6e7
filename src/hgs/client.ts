export * from "../host/hgs-client/client.js"; // temporary: importers move to src/host/hgs-client
