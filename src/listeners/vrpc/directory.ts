import type { TopicBus, TopicMessage } from "../../core/bus.ts";
import { VrpcCallError, type VrpcAgentInfo, type VrpcCall, type VrpcClassInfo, type VrpcDirectory } from "../../core/vrpc.ts";
import { randomToken } from "../../lib/ids.ts";
import type { Logger } from "../../lib/logger.ts";

interface AgentEntry extends Omit<VrpcAgentInfo, "classes"> {
  classes: Map<string, VrpcClassInfo>;
}

const strip = (fn: string) => fn.split("-")[0]!; // vrpc appends C++-style signatures ("speed-number")
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").slice(0, 1000) : []);

/**
 * createVrpcDirectory: the appliance's own VRPC client, in process on the topic bus. It speaks vrpc
 * 3.5's client protocol without an MQTT connection: it reads agents' retained announcements
 * (`+/+/__agentInfo__`, `+/+/+/__classInfo__`, `+/+/+/__classInfoConcise__`) and publishes calls as the
 * broker itself, so there is no credential that could be shown, stored or used from outside, and it is
 * no integration. Replies come back on `<domain>/__gatehouse__/<random>`.
 */
export function createVrpcDirectory(bus: TopicBus, log: Logger, defaultTimeoutMs = 10_000) {
  const agents = new Map<string, AgentEntry>();
  const pending = new Map<string, { resolve(v: unknown): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>();
  const replyId = randomToken().slice(0, 16);
  let seq = 0;
  let stop: (() => void) | undefined;

  const key = (domain: string, agent: string) => `${domain}/${agent}`;
  const entry = (domain: string, agent: string) => {
    let e = agents.get(key(domain, agent));
    if (!e) agents.set(key(domain, agent), (e = { domain, agent, status: "offline", lastSeenAt: null, classes: new Map() }));
    return e;
  };
  const view = (e: AgentEntry): VrpcAgentInfo => ({ ...e, classes: [...e.classes.values()].sort((a, b) => a.className.localeCompare(b.className)) });

  const handle = ({ topic, payload }: { topic: string; payload: Buffer }, live: boolean) => {
    // Every message on the broker passes here: only announcements (`...__`) and our replies matter.
    if (!topic.endsWith("__") && !topic.includes("/__gatehouse__/")) return;
    const levels = topic.split("/");
    if (levels[1] === "__gatehouse__" && levels.length === 3 && levels[2] === replyId) return reply(payload);
    const last = levels.at(-1);
    if (last !== "__agentInfo__" && last !== "__classInfo__" && last !== "__classInfoConcise__") return;
    if ((last === "__agentInfo__" && levels.length !== 3) || (last !== "__agentInfo__" && levels.length !== 4)) return;
    const [domain, agent, className] = levels as [string, string, string];
    if (payload.length === 0) {
      // a cleared announcement: the agent unregistered, or an admin removed it
      if (last === "__agentInfo__") agents.delete(key(domain, agent));
      else agents.get(key(domain, agent))?.classes.delete(className);
      return;
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const e = entry(domain, agent);
    if (live) e.lastSeenAt = Date.now();
    if (last === "__agentInfo__") {
      e.status = json.status === "online" ? "online" : "offline";
      e.hostname = typeof json.hostname === "string" ? json.hostname.slice(0, 256) : undefined;
      e.version = typeof json.version === "string" ? json.version.slice(0, 64) : undefined;
      return;
    }
    e.classes.set(className, {
      className,
      instances: strings(json.instances),
      memberFunctions: strings(json.memberFunctions).map(strip),
      staticFunctions: strings(json.staticFunctions).map(strip),
    });
  };

  const reply = (payload: Buffer) => {
    let json: { i?: string; r?: unknown; e?: unknown };
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const p = json.i === undefined ? undefined : pending.get(json.i);
    if (!p) return;
    pending.delete(json.i!);
    clearTimeout(p.timer);
    if (json.e) {
      const message = typeof json.e === "string" ? json.e : typeof (json.e as { message?: unknown }).message === "string" ? (json.e as { message: string }).message : "remote error";
      p.reject(new VrpcCallError("remote", message));
    } else p.resolve(json.r);
  };

  const directory: VrpcDirectory = {
    agents: () => [...agents.values()].map(view).sort((a, b) => `${a.domain}/${a.agent}`.localeCompare(`${b.domain}/${b.agent}`)),
    agent: (domain, agent) => {
      const e = agents.get(key(domain, agent));
      return e && view(e);
    },
    async call(c: VrpcCall) {
      const e = agents.get(key(c.domain, c.agent));
      if (!e) throw new VrpcCallError("not-found", `no agent ${c.domain}/${c.agent}`);
      const cls = e.classes.get(c.className);
      if (!cls) throw new VrpcCallError("not-found", `agent ${c.domain}/${c.agent} has no class ${c.className}`);
      if (c.instance !== undefined && !cls.instances.includes(c.instance)) throw new VrpcCallError("not-found", `class ${c.className} has no instance ${c.instance}`);
      const functions = c.instance === undefined ? cls.staticFunctions : cls.memberFunctions;
      if (!functions.includes(c.functionName)) throw new VrpcCallError("not-found", `${c.className} has no ${c.instance === undefined ? "static" : "member"} function ${c.functionName}`);
      if (e.status !== "online") throw new VrpcCallError("offline", `agent ${c.domain}/${c.agent} is offline`);
      const id = `gatehouse-${++seq}`;
      const timeoutMs = c.timeoutMs ?? defaultTimeoutMs;
      const answer = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new VrpcCallError("timeout", `no answer from ${c.domain}/${c.agent} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
      });
      // The answer can come back before the publish below has settled: mark it handled now.
      answer.catch(() => {});
      const topic = `${c.domain}/${c.agent}/${c.className}/${c.instance ?? "__static__"}/${c.functionName}`;
      const json = { c: c.instance ?? c.className, f: c.functionName, a: c.args, i: id, s: `${c.domain}/__gatehouse__/${replyId}`, v: 3 };
      await bus.publish({ topic, payload: Buffer.from(JSON.stringify(json)), retain: false, qos: 1 });
      return answer;
    },
    async remove(domain, agent) {
      const e = agents.get(key(domain, agent));
      if (!e) throw new VrpcCallError("not-found", `no agent ${domain}/${agent}`);
      if (e.status === "online") throw new VrpcCallError("offline", `agent ${domain}/${agent} is online; stop it first`);
      const empty = Buffer.alloc(0);
      for (const className of e.classes.keys()) {
        await bus.publish({ topic: `${domain}/${agent}/${className}/__classInfo__`, payload: empty, retain: true });
        await bus.publish({ topic: `${domain}/${agent}/${className}/__classInfoConcise__`, payload: empty, retain: true });
      }
      await bus.publish({ topic: `${domain}/${agent}/__agentInfo__`, payload: empty, retain: true });
      agents.delete(key(domain, agent));
      log.info("vrpc agent removed", { domain, agent });
    },
  };

  return {
    directory,
    async start() {
      stop = bus.onMessage((m: TopicMessage) => handle(m, true));
      for (const filter of ["+/+/__agentInfo__", "+/+/+/__classInfo__", "+/+/+/__classInfoConcise__"]) {
        for await (const m of bus.retained(filter)) handle(m, false);
      }
    },
    stop() {
      stop?.();
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new VrpcCallError("timeout", "the appliance is stopping"));
        pending.delete(id);
      }
    },
  };
}
