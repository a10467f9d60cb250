import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { eventually } from "../helpers/wait.ts";

let app: App;
let base: string;
let broker: string;
let cookie: string;
let csrf: string;
const agents: ReturnType<typeof Bun.spawn>[] = [];
const debugBefore = console.debug;

beforeAll(async () => {
  ({ app, url: base } = await testApp(["--opcua-port", "off", "--vrpc-call-timeout", "2"]));
  broker = `mqtt://127.0.0.1:${app.address("mqtt")!.port}`;
  ({ cookie, csrf } = await signIn(base));
});
afterEach(() => {
  for (const p of agents.splice(0)) p.kill("SIGKILL");
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

/** startAgent: a VRPC agent in its own process; resolves once it serves (or with its first error line). */
async function startAgent(env: Record<string, string>): Promise<{ proc: ReturnType<typeof Bun.spawn>; first: string }> {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "../fixtures/vrpc-agent.ts")], { env: { ...process.env, BROKER: broker, ...env }, stdout: "pipe", stderr: "inherit" });
  agents.push(proc);
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return { proc, first: new TextDecoder().decode(value ?? new Uint8Array()).trim() };
}

const api = (method: string, path: string, json?: unknown) =>
  fetch(`${base}${path}`, { method, headers: { cookie, "x-csrf-token": csrf, ...(json !== undefined ? { "content-type": "application/json" } : {}) }, body: json === undefined ? undefined : JSON.stringify(json) });

describe("VRPC agents on the page and the API", () => {
  it("lists a real agent with its classes and functions, calls it, reports remote errors, missing functions and offline agents", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/press-agent" });
    const { proc, first } = await startAgent({ USERNAME: "plant/press-agent", PASSWORD: cred.password });
    expect(first).toBe("serving");

    const listed = await eventually(async () => {
      const list = (await (await api("GET", "/api/v1/vrpc")).json()) as { agents: { domain: string; agent: string; status: string; classes: { className: string; staticFunctions: string[]; memberFunctions: string[]; instances: string[] }[] }[] };
      const a = list.agents.find((x) => x.agent === "press-agent");
      expect(a?.status).toBe("online");
      expect(a?.classes[0]?.instances).toContain("press-1");
      return a!;
    });
    expect(listed.classes[0]).toMatchObject({ className: "Press", staticFunctions: expect.arrayContaining(["speed", "jam"]), memberFunctions: expect.arrayContaining(["status"]) });

    const fragment = await (await fetch(`${base}/agents/list`, { headers: { cookie, "hx-request": "true" } })).text();
    expect(fragment).toContain("plant/press-agent");
    expect(fragment).toContain("Press.speed");
    expect(fragment).toContain("press-1.status");

    const ok = await api("POST", "/api/v1/vrpc/plant/press-agent/Press/speed", [21]);
    expect([ok.status, await ok.json()]).toEqual([200, { result: 42 }]);
    const member = await api("POST", "/api/v1/vrpc/plant/press-agent/Press/status?instance=press-1", []);
    expect(await member.json()).toEqual({ result: "running on line 1" });
    const thrown = await api("POST", "/api/v1/vrpc/plant/press-agent/Press/jam", []);
    expect(thrown.status).toBe(502);
    expect((await thrown.json()).message).toContain("the press is jammed");
    expect((await api("POST", "/api/v1/vrpc/plant/press-agent/Press/explode", [])).status).toBe(404);
    expect((await api("POST", "/api/v1/vrpc/plant/nobody/Press/speed", [])).status).toBe(404);

    // The row says what the integration is.
    const page = await (await fetch(`${base}/integrations?q=press-agent`, { headers: { cookie } })).text();
    expect(page).toContain("Agent (Edge Connector), online");

    // The page's call form, with htmx.
    const form = await fetch(`${base}/agents/call`, {
      method: "POST",
      headers: { cookie, "hx-request": "true", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf, domain: "plant", agent: "press-agent", className: "Press", functionName: "speed", args: "[5]" }),
    });
    expect(await form.text()).toContain("10");

    // Killed: the broker publishes its last will; the agent goes offline and calls get 504.
    proc.kill("SIGKILL");
    await eventually(async () => expect(((await (await api("GET", "/api/v1/vrpc")).json()) as { agents: { agent: string; status: string }[] }).agents.find((x) => x.agent === "press-agent")?.status).toBe("offline"));
    expect((await api("POST", "/api/v1/vrpc/plant/press-agent/Press/speed", [1])).status).toBe(504);

    // Removing an offline agent clears its retained announcements.
    const removed = await fetch(`${base}/agents/plant/press-agent/remove`, { method: "POST", redirect: "manual", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ _csrf: csrf }) });
    expect(removed.status).toBe(303);
    const retained: string[] = [];
    for await (const m of app.core.bus.retained("plant/press-agent/#")) retained.push(m.topic);
    expect(retained).toEqual([]);
    expect(app.core.vrpc.current!.agent("plant", "press-agent")).toBeUndefined();
  }, 30_000);

  it("an agent with only a token connects as <domain>/<agent> and is admitted by that integration", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "plant/token-agent", password: "the-agent-token-123" });
    const { first } = await startAgent({ AGENT: "token-agent", TOKEN: "the-agent-token-123" });
    expect(first).toBe("serving");
    await eventually(() => expect(app.core.vrpc.current!.agent("plant", "token-agent")?.status).toBe("online"));
  }, 30_000);

  it("an agent with wrong credentials is refused and never shows online", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "plant/wrong-agent", password: "the-right-password" });
    const { first } = await startAgent({ AGENT: "wrong-agent", USERNAME: "plant/wrong-agent", PASSWORD: "not-the-password" });
    expect(first).toContain("error");
    expect(app.core.vrpc.current!.agent("plant", "wrong-agent")).toBeUndefined();
  }, 30_000);

  it("the appliance's own VRPC client is no integration and leaves console.debug alone", () => {
    expect(app.core.credentials.list({ q: "gatehouse", pageSize: 200 }).rows.filter((i) => i.type === "vrpc")).toEqual([]);
    expect(console.debug).toBe(debugBefore);
  });
});

describe("VRPC topic rules", () => {
  it("an agent's integration announces only itself and stays in its domain", async () => {
    const a = await app.core.credentials.create({ type: "vrpc", username: "plant/agent-a" });
    const watcher = await app.core.credentials.create({ type: "mqtt", username: "vrpc-watcher" });
    app.core.credentials.update(watcher.integration.id, { subscribeAcl: ["plant/#", "other/#"] }); // `#` does not reach into a VRPC domain
    const w = await connectMqtt(app.address("mqtt")!.port, { username: "vrpc-watcher", password: watcher.password });
    const seen: string[] = [];
    w.on("message", (t) => seen.push(t));
    await w.subscribeAsync(["plant/agent-a/#", "plant/agent-b/#", "other/#"]);
    const c = await connectMqtt(app.address("mqtt")!.port, { username: "plant/agent-a", password: a.password });
    await c.publishAsync("plant/agent-b/__agentInfo__", '{"status":"online"}', { qos: 1, retain: true }); // another agent: refused
    await c.publishAsync("other/agent-a/__agentInfo__", '{"status":"online"}', { qos: 1 }); // another domain: refused
    await c.publishAsync("other/x", "out of domain", { qos: 1 }); // refused
    await c.publishAsync("plant/agent-a/__agentInfo__", '{"status":"online"}', { qos: 1, retain: true }); // itself: fine
    await eventually(() => expect(seen).toContain("plant/agent-a/__agentInfo__"));
    expect(seen.filter((t) => t !== "plant/agent-a/__agentInfo__")).toEqual([]);
    expect(await c.subscribeAsync("other/#").then((g) => g[0]?.qos, () => 128)).toBe(128);
    await c.publishAsync("plant/agent-a/__agentInfo__", "", { qos: 1, retain: true });
    await Promise.all([c.endAsync(), w.endAsync()]);
  });
});
