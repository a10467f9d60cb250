/** IntegrationType: one spelling everywhere (database, API, listeners). */
export const integrationTypes = ["mqtt", "opcua", "http", "vrpc"] as const;
export type IntegrationType = (typeof integrationTypes)[number];

export function isIntegrationType(v: unknown): v is IntegrationType {
  return typeof v === "string" && (integrationTypes as readonly string[]).includes(v);
}

/** Integration: what the core hands out; never carries the password hash. */
export interface Integration {
  id: number;
  username: string;
  type: IntegrationType;
  description: string;
  active: boolean;
  publishAcl: string[];
  subscribeAcl: string[];
  createdAt: number;
  updatedAt: number;
  lastLoginAt: number | null;
}

/** LoginMeta: what a listener knows about the connecting client. */
export interface LoginMeta {
  remote?: string;
  clientId?: string;
}

export type VerifyFailure = "unknown-user" | "wrong-password" | "deactivated" | "wrong-type" | "throttled";
export type VerifyResult = { ok: true; integration: Integration; cached: boolean } | { ok: false; reason: VerifyFailure };
