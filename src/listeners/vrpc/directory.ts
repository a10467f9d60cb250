import type { TopicBus, TopicMessage } from "../../core/bus.ts";
import {
  isVrpcInternal,
  VrpcCallError,
  type VrpcAgentInfo,
  type VrpcCall,
  type VrpcClassInfo,
  type VrpcDirectory,
} from "./types.ts";
import { randomToken } from "../../lib/ids.ts";
import type { Logger } from "../../lib/logger.ts";

interface AgentEntry extends Omit<VrpcAgentInfo, "classes"> {
  classes: Map<string, VrpcClassInfo>;
}

/** Pending: one call waiting for its answer (vrpc answers an async function twice: `__p__...`, then the value). */
interface Pending {
  id: string;
  /** the `__p__<fn>-<n>` placeholder the first answer named, once it came */
  placeholder?: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Bounds on what agents announce: names are shown on the page and held in memory, and an agent chooses
 * them. A longer name or one past the count is left out (the agent's own clients still see it).
 */
const maxName = 256;
const maxNames = 1000;
const maxClasses = 1000;
const maxAgents = 10_000;
/** calls waiting for an answer at once (each holds a timer until its answer or its timeout) */
const maxInFlight = 1000;

const strip = (fn: string) => fn.split("-")[0]!; // vrpc appends C++-style signatures ("speed-number")
/** names: an announced list of names, bounded, without vrpc's internals (never offered from here). */
const names = (v: unknown, fn = (x: string) => x): string[] =>
  Array.isArray(v)
    ? [...new Set(v.filter((x): x is string => typeof x === "string").map(fn))]
        .filter((x) => x.length > 0 && x.length <= maxName && !isVrpcInternal(x))
        .slice(0, maxNames)
    : [];

/** callbackMarker: a string argument vrpc's agent turns into a callback or an event listener publishing to a topic of the caller's choice. */
const callbackMarker = (a: unknown) => typeof a === "string" && (a.startsWith("__f__") || a.startsWith("__e__"));

/**
 * createVrpcDirectory: the appliance's own VRPC client, in process on the topic bus. It speaks vrpc
 * 3.5's client protocol without an MQTT connection: it reads agents' retained announcements
 * (`+/+/__agentInfo__`, `+/+/+/__classInfo__`, `+/+/+/__classInfoConcise__`) and publishes calls as the
 * broker itself, so there is no credential that could be shown, stored or used from outside, and it is
 * no integration. Each call's replies come back on its own `<domain>/__gatehouse__/<random>.<n>`.
 */
export function createVrpcDirectory(bus: TopicBus, log: Logger, defaultTimeoutMs = 10_000) {
  const agents = new Map<string, AgentEntry>();
  /** by reply topic: each call has its own, so two agents' identical `__p__` placeholders cannot mix */
  const pending = new Map<string, Pending>();
  const replyId = randomToken().slice(0, 16);
  let seq = 0;
  let stop: (() => void) | undefined;

  const key = (domain: string, agent: string) => `${domain}/${agent}`;
  const entry = (domain: string, agent: string) => {
    let e = agents.get(key(domain, agent));
    if (!e && agents.size < maxAgents)
      agents.set(key(domain, agent), (e = { domain, agent, status: "offline", lastSeenAt: null, classes: new Map() }));
    return e;
  };
  const view = (e: AgentEntry): VrpcAgentInfo => ({
    ...e,
    classes: [...e.classes.values()].sort((a, b) => a.className.localeCompare(b.className)),
  });

  const handle = ({ topic, payload }: { topic: string; payload: Buffer }, live: boolean) => {
    // Every message on the broker passes here: only announcements (`...__`) and our replies matter.
    if (!topic.endsWith("__") && !topic.includes("/__gatehouse__/")) return;
    const levels = topic.split("/");
    if (levels[1] === "__gatehouse__" && levels.length === 3) return reply(topic, payload);
    const last = levels.at(-1);
    if (last !== "__agentInfo__" && last !== "__classInfo__" && last !== "__classInfoConcise__") return;
    if ((last === "__agentInfo__" && levels.length !== 3) || (last !== "__agentInfo__" && levels.length !== 4)) return;
    const [domain, agent, className] = levels as [string, string, string];
    if (domain.length > maxName || agent.length > maxName || className.length > maxName) return;
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
    if (!e) return;
    if (live) e.lastSeenAt = Date.now();
    if (last === "__agentInfo__") {
      e.status = json.status === "online" ? "online" : "offline";
      e.hostname = typeof json.hostname === "string" ? json.hostname.slice(0, 256) : undefined;
      e.version = typeof json.version === "string" ? json.version.slice(0, 64) : undefined;
      return;
    }
    if (!e.classes.has(className) && e.classes.size >= maxClasses) return;
    e.classes.set(className, {
      className,
      instances: names(json.instances),
      memberFunctions: names(json.memberFunctions, strip),
      staticFunctions: names(json.staticFunctions, strip),
    });
  };

  /**
   * reply: an answer on a call's own reply topic. A sync function answers once; an async one first
   * with the placeholder `__p__<fn>-<n>` (no value yet), then with `i` set to that placeholder and the
   * value or the error: the call waits for that second answer, as vrpc's own VrpcClient does. An answer
   * nobody waits for (late, after the timeout) finds no entry and is dropped.
   */
  const reply = (topic: string, payload: Buffer) => {
    const p = pending.get(topic);
    if (!p) return;
    let json: { i?: unknown; r?: unknown; e?: unknown };
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    if (json.i !== (p.placeholder ?? p.id)) return;
    if (!json.e && p.placeholder === undefined && typeof json.r === "string" && json.r.startsWith("__p__")) {
      p.placeholder = json.r.slice(0, maxName);
      return;
    }
    pending.delete(topic);
    clearTimeout(p.timer);
    if (json.e) {
      const e = json.e as { message?: unknown };
      const message = typeof json.e === "string" ? json.e : typeof e.message === "string" ? e.message : "remote error";
      p.reject(new VrpcCallError("remote", message.slice(0, 4096)));
    } else p.resolve(json.r);
  };

  const directory: VrpcDirectory = {
    agents: () =>
      [...agents.values()].map(view).sort((a, b) => `${a.domain}/${a.agent}`.localeCompare(`${b.domain}/${b.agent}`)),
    pendingCalls: () => pending.size,
    agent: (domain, agent) => {
      const e = agents.get(key(domain, agent));
      return e && view(e);
    },
    async call(c: VrpcCall) {
      for (const name of [c.className, c.functionName, c.instance ?? ""]) {
        if (isVrpcInternal(name))
          throw new VrpcCallError(
            "forbidden",
            `${name.slice(0, 64)} is vrpc's own machinery, not a function to call from here`,
          );
      }
      if (c.args.some(callbackMarker))
        throw new VrpcCallError(
          "invalid",
          "arguments starting with __f__ or __e__ are vrpc callbacks, which a call from here cannot take",
        );
      const e = agents.get(key(c.domain, c.agent));
      if (!e) throw new VrpcCallError("not-found", `no agent ${c.domain}/${c.agent}`);
      const cls = e.classes.get(c.className);
      if (!cls) throw new VrpcCallError("not-found", `agent ${c.domain}/${c.agent} has no class ${c.className}`);
      if (c.instance !== undefined && !cls.instances.includes(c.instance))
        throw new VrpcCallError("not-found", `class ${c.className} has no instance ${c.instance}`);
      const functions = c.instance === undefined ? cls.staticFunctions : cls.memberFunctions;
      if (!functions.includes(c.functionName))
        throw new VrpcCallError(
          "not-found",
          `${c.className} has no ${c.instance === undefined ? "static" : "member"} function ${c.functionName}`,
        );
      if (e.status !== "online") throw new VrpcCallError("offline", `agent ${c.domain}/${c.agent} is offline`);
      if (pending.size >= maxInFlight)
        throw new VrpcCallError("busy", `${maxInFlight} calls are waiting for their agents; try again shortly`);
      const id = `gatehouse-${++seq}`;
      // Its own reply topic (three levels, like a VrpcClient's id `<domain>/<host>/<id>`), inside the
      // domain the agent may publish to.
      const replyTopic = `${c.domain}/__gatehouse__/${replyId}.${seq}`;
      const timeoutMs = c.timeoutMs ?? defaultTimeoutMs;
      const answer = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(replyTopic);
          reject(new VrpcCallError("timeout", `no answer from ${c.domain}/${c.agent} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(replyTopic, { id, resolve, reject, timer });
      });
      // The answer can come back before the publish below has settled: mark it handled now.
      answer.catch(() => {});
      const topic = `${c.domain}/${c.agent}/${c.className}/${c.instance ?? "__static__"}/${c.functionName}`;
      const json = { c: c.instance ?? c.className, f: c.functionName, a: c.args, i: id, s: replyTopic, v: 3 };
      await bus.publish({ topic, payload: Buffer.from(JSON.stringify(json)), retain: false, qos: 1 });
      return answer;
    },
    async remove(domain, agent) {
      const e = agents.get(key(domain, agent));
      if (!e) throw new VrpcCallError("not-found", `no agent ${domain}/${agent}`);
      if (e.status === "online")
        throw new VrpcCallError("offline", `agent ${domain}/${agent} is online; stop it first`);
      const empty = Buffer.alloc(0);
      for (const className of e.classes.keys()) {
        await bus.publish({ topic: `${domain}/${agent}/${className}/__classInfo__`, payload: empty, retain: true });
        await bus.publish({
          topic: `${domain}/${agent}/${className}/__classInfoConcise__`,
          payload: empty,
          retain: true,
        });
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
