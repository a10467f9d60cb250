/**
 * The VRPC directory as the rest of the appliance sees it (the page, the API), without knowing how the
 * VRPC listener keeps it. VRPC (npm `vrpc` 3.5) is RPC over MQTT: agents announce themselves on
 * retained topics under `<domain>/<agent>/`, clients call on `<domain>/<agent>/<Class>/...`.
 */
export interface VrpcClassInfo {
  className: string;
  instances: string[];
  memberFunctions: string[];
  staticFunctions: string[];
}

export interface VrpcAgentInfo {
  domain: string;
  agent: string;
  status: "online" | "offline";
  hostname?: string;
  version?: string;
  /** when its announcement last changed (null: retained from before this start) */
  lastSeenAt: number | null;
  classes: VrpcClassInfo[];
}

export interface VrpcCall {
  domain: string;
  agent: string;
  className: string;
  functionName: string;
  /** a member function of this instance; a static function when absent */
  instance?: string;
  args: unknown[];
  timeoutMs?: number;
}

/**
 * VrpcCallError: `code` says what the caller should do: 404 no such agent/function, 403 a vrpc internal,
 * 400 arguments vrpc would take for callbacks, 504 offline or no answer, 502 the remote threw, 503 too
 * many calls waiting.
 */
export class VrpcCallError extends Error {
  constructor(
    readonly code: "not-found" | "forbidden" | "invalid" | "offline" | "timeout" | "remote" | "busy",
    message: string,
  ) {
    super(message);
    this.name = "VrpcCallError";
  }
}

export interface VrpcDirectory {
  agents(): VrpcAgentInfo[];
  agent(domain: string, agent: string): VrpcAgentInfo | undefined;
  call(call: VrpcCall): Promise<unknown>;
  /** calls waiting for their answer now (an answer after the timeout must not leave one behind) */
  pendingCalls(): number;
  /** forget an offline agent: its retained announcements are cleared from the broker */
  remove(domain: string, agent: string): Promise<void>;
}

/**
 * isVrpcInternal: vrpc's own reserved names (`__createIsolated__`, `__createShared__`, `__callAll__`,
 * `__delete__`, `__getNamed__`, `__static__`, ... : anything `__*__`): lifecycle machinery of its
 * clients, never offered or called from the appliance.
 */
export function isVrpcInternal(name: string): boolean {
  return name.length > 4 && name.startsWith("__") && name.endsWith("__");
}
