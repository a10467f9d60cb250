/**
 * integrationTypeInfo: the one definition of the protocol types. Every list, label and counter of
 * types derives from it; tables that must say something per type are `Record<IntegrationType, …>`,
 * so adding a type here makes `tsc` point at each of them (test/architecture.test.ts checks that).
 */
export const integrationTypeInfo = {
  /** its label is for people, its name for identifiers such as the OPC UA `Online<name>` counters */
  mqtt: { label: "MQTT", name: "MQTT" },
  opcua: { label: "OPC UA", name: "OpcUa" },
  http: { label: "HTTP", name: "HTTP" },
  vrpc: { label: "VRPC", name: "VRPC" },
} as const satisfies Record<string, { label: string; name: string }>;

/** IntegrationType: one spelling everywhere (database, API, listeners). */
export type IntegrationType = keyof typeof integrationTypeInfo;
export const integrationTypes = Object.keys(integrationTypeInfo) as [IntegrationType, ...IntegrationType[]];

export function isIntegrationType(v: unknown): v is IntegrationType {
  return typeof v === "string" && Object.hasOwn(integrationTypeInfo, v);
}

/** typeListText: "mqtt, opcua, http or vrpc", for error messages. */
export const typeListText = `${integrationTypes.slice(0, -1).join(", ")} or ${integrationTypes.at(-1)}`;

/** integrationStatuses: what the page and the API call an integration's state. */
export const integrationStatuses = ["online", "offline", "deactivated"] as const;
export type IntegrationStatus = (typeof integrationStatuses)[number];

export function statusOf(active: boolean, online: boolean): IntegrationStatus {
  return !active ? "deactivated" : online ? "online" : "offline";
}

/** Integration: what the core hands out; never carries the password hash. */
export interface Integration {
  id: number;
  username: string;
  type: IntegrationType;
  description: string;
  active: boolean;
  /** topic filters this integration may publish to / subscribe to ... */
  publishAcl: string[];
  subscribeAcl: string[];
  /** ... unless one of these matches: a deny wins */
  denyPublishAcl: string[];
  denySubscribeAcl: string[];
  createdAt: number;
  updatedAt: number;
  lastLoginAt: number | null;
  /** the client id and address of the last login, where its listener knew them */
  lastLoginClientId: string | null;
  lastLoginRemote: string | null;
  /**
   * revision: changes with every change to the integration (password, active flag, permissions,
   * name). A login verified at one revision opens a session only while it is still current.
   */
  revision: number;
}

/** LoginMeta: what a listener knows about the connecting client. */
export interface LoginMeta {
  remote?: string;
  clientId?: string;
  /** the protocol level, where a listener has several ("MQTT 5", "MQTT 3.1.1") */
  protocol?: string;
}

/**
 * VerifyFailure: why the core refused a login. `busy`: the password-check line is full of attempts that
 * rank no worse than this one (the client may retry soon); `abandoned`: the client went away while its
 * attempt waited in that line (its password was never checked); `banned`: decided before any password
 * work (core/bans.ts).
 */
export type VerifyFailure =
  | "unknown-user"
  | "wrong-password"
  | "deactivated"
  | "wrong-type"
  | "throttled"
  | "busy"
  | "abandoned"
  | "banned";
/** LoginFailure: why a login was refused, by the core or by a listener's protocol rules. */
export type LoginFailure =
  | VerifyFailure
  | "unsupported-protocol"
  | "client-id-in-use"
  | "connection-limit"
  | "stale"
  /** OPC UA: no user token, an X509 user token, a token the endpoint does not accept (a password in the clear) */
  | "anonymous"
  | "certificate-user"
  | "insecure-token"
  /** OPC UA: a client application certificate that is not trusted */
  | "certificate-rejected";
export type VerifyResult =
  | { ok: true; integration: Integration; cached: boolean }
  | { ok: false; reason: VerifyFailure };

/** listSorts: the columns the list sorts by; `created` (newest first) is the default. */
export const listSorts = ["created", "username", "type", "status", "lastLogin"] as const;
export type ListSort = (typeof listSorts)[number];
/** the direction a column sorts in when first chosen: newest first for times, A-Z otherwise */
export const defaultDir: Record<ListSort, "asc" | "desc"> = {
  created: "desc",
  lastLogin: "desc",
  username: "asc",
  type: "asc",
  status: "asc",
};

/**
 * Traffic: what one session, or one integration over all its sessions, moved since the appliance started:
 * messages and payload bytes received from the device (in) and delivered to it (out), publishes the topic
 * permissions refused, and when the last message went either way (epoch ms; null: none yet). Kept in
 * memory only: a restart starts from zero, as EMQX's per-client counters do.
 */
export interface Traffic {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  refused: number;
  lastMessageAt: number | null;
}

/** SessionInfo: one live connection of one client, as the page and the API show it. */
export interface SessionInfo {
  id: string;
  integrationId: number;
  username: string;
  type: IntegrationType;
  clientId?: string;
  remote?: string;
  /** the protocol level ("MQTT 5", "MQTT 3.1.1") where a listener has several */
  protocol?: string;
  openedAt: number;
  /** stateless protocols (HTTP): the last request and how many there were */
  lastSeenAt?: number;
  requests?: number;
  /** what this connection moved so far (a copy, taken when listed) */
  traffic?: Traffic;
  /** the topic filters it subscribes to now, where its protocol has them (MQTT, VRPC) */
  subscriptions?: string[];
}
