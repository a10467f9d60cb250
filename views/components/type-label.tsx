import type { IntegrationType } from "../../src/core/types.ts";

export const typeLabels: Record<IntegrationType, string> = {
  mqtt: "MQTT",
  opcua: "OPC UA",
  http: "HTTP",
  vrpc: "VRPC",
};
