import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp, vrpcOf } from "../helpers/app.ts";
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
  const proc = Bun.spawn(["bun", join(import.meta.dir, "../fixtures/vrpc-agent.ts")], {
    env: { ...process.env, BROKER: broker, ...env },
    stdout: "pipe",
    stderr: "inherit",
  });
  agents.push(proc);
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return { proc, first: new TextDecoder().decode(value ?? new Uint8Array()).trim() };
}

const api = (method: string, path: string, json?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: {
      cookie,
      "x-csrf-token": csrf,
      origin: base,
      ...(json !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: json === undefined ? undefined : JSON.stringify(json),
  });

describe("VRPC agents on the page and the API", () => {
  it("lists a real agent with its classes and functions, calls it, reports remote errors, missing functions and offline agents", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/press-agent" });
    const { proc, first } = await startAgent({ USERNAME: "plant/press-agent", PASSWORD: cred.password });
    expect(first).toBe("serving");

    const listed = await eventually(async () => {
      const list = (await (await api("GET", "/api/v1/vrpc")).json()) as {
        agents: {
          domain: string;
          agent: string;
          status: string;
          classes: { className: string; staticFunctions: string[]; memberFunctions: string[]; instances: string[] }[];
        }[];
      };
      const a = list.agents.find((x) => x.agent === "press-agent");
      expect(a?.status).toBe("online");
      expect(a?.classes[0]?.instances).toContain("press-1");
      return a!;
    });
    expect(listed.classes[0]).toMatchObject({
      className: "Press",
      staticFunctions: expect.arrayContaining(["speed", "jam"]),
      memberFunctions: expect.arrayContaining(["status"]),
    });

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
    expect(page).toContain("Agent, online"); // one line: the role in short; the detail says it whole

    // The page's call form, with htmx.
    const form = await fetch(`${base}/agents/call`, {
      method: "POST",
      headers: { cookie, "hx-request": "true", "content-type": "application/x-www-form-urlencoded", origin: base },
      body: new URLSearchParams({
        _csrf: csrf,
        domain: "plant",
        agent: "press-agent",
        className: "Press",
        functionName: "speed",
        args: "[5]",
      }),
    });
    expect(await form.text()).toContain("10");

    // Killed: the broker publishes its last will; the agent goes offline and calls get 504.
    proc.kill("SIGKILL");
    await eventually(async () =>
      expect(
        (
          (await (await api("GET", "/api/v1/vrpc")).json()) as { agents: { agent: string; status: string }[] }
        ).agents.find((x) => x.agent === "press-agent")?.status,
      ).toBe("offline"),
    );
    expect((await api("POST", "/api/v1/vrpc/plant/press-agent/Press/speed", [1])).status).toBe(504);

    // An offline agent has no call forms: nothing would answer.
    const offline = await (await fetch(`${base}/agents/list`, { headers: { cookie, "hx-request": "true" } })).text();
    const section = offline.slice(offline.indexOf('data-agent="plant/press-agent"'));
    expect(section.slice(0, section.indexOf("</section>"))).not.toContain('action="/agents/call"');
    expect(section).toContain("data-confirm"); // the Remove button names its target before it posts

    // Removing an offline agent needs a confirmation, then clears its retained announcements.
    const remove = (fields: Record<string, string>) =>
      fetch(`${base}/agents/plant/press-agent/remove`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: base },
        body: new URLSearchParams({ _csrf: csrf, ...fields }),
      });
    const asked = await remove({});
    expect(asked.status).toBe(200);
    expect(await asked.text()).toContain("Remove agent?");
    expect(vrpcOf(app).agent("plant", "press-agent")).toBeDefined();
    const removed = await remove({ confirmed: "yes" });
    expect(removed.status).toBe(303);
    const retained: string[] = [];
    for await (const m of app.core.bus.retained("plant/press-agent/#")) retained.push(m.topic);
    expect(retained).toEqual([]);
    expect(vrpcOf(app).agent("plant", "press-agent")).toBeUndefined();
  }, 30_000);

  it("an agent with only a token connects as <domain>/<agent> and is admitted by that integration", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "plant/token-agent", password: "the-agent-token-123" });
    const { first } = await startAgent({ AGENT: "token-agent", TOKEN: "the-agent-token-123" });
    expect(first).toBe("serving");
    await eventually(() => expect(vrpcOf(app).agent("plant", "token-agent")?.status).toBe("online"));
  }, 30_000);

  it("an agent with wrong credentials is refused and never shows online", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "plant/wrong-agent", password: "the-right-password" });
    const { first } = await startAgent({
      AGENT: "wrong-agent",
      USERNAME: "plant/wrong-agent",
      PASSWORD: "not-the-password",
    });
    expect(first).toContain("error");
    expect(vrpcOf(app).agent("plant", "wrong-agent")).toBeUndefined();
  }, 30_000);

  it("the appliance's own VRPC client is no integration and leaves console.debug alone", () => {
    expect(app.core.credentials.list({ q: "gatehouse", pageSize: 200 }).rows.filter((i) => i.type === "vrpc")).toEqual(
      [],
    );
    expect(console.debug).toBe(debugBefore);
  });
});

const listFragment = async () =>
  (await fetch(`${base}/agents/list`, { headers: { cookie, "hx-request": "true" } })).text();
const pageCall = (fields: Record<string, string>, htmx = true) =>
  fetch(`${base}/agents/call`, {
    method: "POST",
    headers: {
      cookie,
      ...(htmx ? { "hx-request": "true" } : {}),
      "content-type": "application/x-www-form-urlencoded",
      origin: base,
    },
    body: new URLSearchParams({
      _csrf: csrf,
      domain: "plant",
      agent: "async-agent",
      className: "Press",
      args: "[]",
      ...fields,
    }),
  });

describe("VRPC calls as edge connectors make them", () => {
  it("an async function answers its resolved value on the page and the API; a throwing one 502, a slow one 504, its late answer dropped", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/async-agent" });
    const { first } = await startAgent({
      AGENT: "async-agent",
      USERNAME: "plant/async-agent",
      PASSWORD: cred.password,
    });
    expect(first).toBe("serving");
    await eventually(() =>
      expect(vrpcOf(app).agent("plant", "async-agent")?.classes[0]?.staticFunctions).toContain("later"),
    );

    const ok = await api("POST", "/api/v1/vrpc/plant/async-agent/Press/later", [21]);
    expect([ok.status, await ok.json()]).toEqual([200, { result: 42 }]);
    const shown = await (await pageCall({ functionName: "later", args: "[5]" })).text();
    expect(shown).toContain("Result");
    expect(shown).toContain("10");
    expect(shown).not.toContain("__p__");

    const thrown = await api("POST", "/api/v1/vrpc/plant/async-agent/Press/fail", []);
    expect(thrown.status).toBe(502);
    expect((await thrown.json()).message).toBe("<b>valve</b> stuck");
    const failedPage = await pageCall({ functionName: "fail" }, false);
    expect(failedPage.status).toBe(502);
    const failedText = await failedPage.text();
    expect(failedText).toContain("&lt;b&gt;valve&lt;/b&gt; stuck");
    expect(failedText).not.toContain("<b>valve</b>");

    // Slower than --vrpc-call-timeout (2 s here): 504; its answer arrives later and finds nobody waiting.
    const witness = await app.core.credentials.create({ type: "mqtt", username: "reply-witness" });
    app.core.credentials.update(witness.integration.id, { subscribeAcl: ["plant/__gatehouse__/#"], publishAcl: [] });
    const w = await connectMqtt(app.address("mqtt")!.port, { username: "reply-witness", password: witness.password });
    await w.subscribeAsync("plant/__gatehouse__/#");
    const late = new Promise<string>((resolve) =>
      w.on("message", (_t, p) => p.toString().includes('"r":"late"') && resolve(p.toString())),
    );
    const slow = await api("POST", "/api/v1/vrpc/plant/async-agent/Press/slow", [3000]);
    expect(slow.status).toBe(504);
    expect(vrpcOf(app).pendingCalls()).toBe(0);
    await late;
    expect(vrpcOf(app).pendingCalls()).toBe(0);
    // ... and the next call is answered as usual
    expect(await (await api("POST", "/api/v1/vrpc/plant/async-agent/Press/later", [1])).json()).toEqual({ result: 2 });
    await w.endAsync();
  }, 30_000);

  it("vrpc's internals are neither offered nor callable; callback arguments are refused", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/inner-agent" });
    const { first } = await startAgent({
      AGENT: "inner-agent",
      USERNAME: "plant/inner-agent",
      PASSWORD: cred.password,
    });
    expect(first).toBe("serving");
    await eventually(() =>
      expect(vrpcOf(app).agent("plant", "inner-agent")?.classes[0]?.instances).toContain("press-1"),
    );

    const fragment = await listFragment();
    const listed = JSON.stringify(await (await api("GET", "/api/v1/vrpc")).json());
    for (const internal of ["__createIsolated__", "__createShared__", "__callAll__", "__delete__"]) {
      expect(fragment).not.toContain(internal);
      expect(listed).not.toContain(internal);
      expect((await api("POST", `/api/v1/vrpc/plant/inner-agent/Press/${internal}`, ["x"])).status).toBe(403);
    }
    expect((await api("POST", "/api/v1/vrpc/plant/inner-agent/Press/__getNamed__", [])).status).toBe(403);
    expect((await api("POST", "/api/v1/vrpc/plant/inner-agent/Press/status?instance=__static__", [])).status).toBe(403);
    const form = await pageCall({ agent: "inner-agent", functionName: "__createShared__", args: '["evil"]' }, false);
    expect(form.status).toBe(403);
    // `__e__<topic>` would make the agent publish events to a topic of the caller's choice from now on
    expect((await api("POST", "/api/v1/vrpc/plant/inner-agent/Press/speed", ["__e__plant/inner-agent/x"])).status).toBe(
      400,
    );
    expect(vrpcOf(app).agent("plant", "inner-agent")!.classes[0]!.instances).toEqual(["press-1"]);
  }, 30_000);

  it("names an agent chooses are shown escaped and bounded", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/odd-agent" });
    const c = await connectMqtt(app.address("mqtt")!.port, { username: "plant/odd-agent", password: cred.password });
    await c.publishAsync(
      "plant/odd-agent/__agentInfo__",
      JSON.stringify({ status: "online", hostname: "<i>host</i>", version: "1" }),
      { qos: 1, retain: true },
    );
    const info = {
      className: "<img src=x>",
      instances: ["<b>i</b>"],
      memberFunctions: ["<script>m</script>"],
      staticFunctions: ["<svg onload=1>", "f".repeat(300)],
    };
    await c.publishAsync("plant/odd-agent/<img src=x>/__classInfo__", JSON.stringify(info), { qos: 1, retain: true });
    await c.publishAsync(
      `plant/odd-agent/${"C".repeat(300)}/__classInfo__`,
      JSON.stringify({ ...info, className: "C" }),
      { qos: 1, retain: true },
    );
    await eventually(() => expect(vrpcOf(app).agent("plant", "odd-agent")?.classes.length).toBe(1));
    const fragment = await listFragment();
    expect(fragment).toContain("&lt;img src=x&gt;");
    expect(fragment).toContain("&lt;i&gt;host&lt;/i&gt;");
    for (const raw of [
      "<img src=x>",
      "<i>host",
      "<b>i</b>",
      "<script>m",
      "<svg onload",
      "f".repeat(257),
      "C".repeat(257),
    ])
      expect(fragment).not.toContain(raw);
    for (const t of [
      "plant/odd-agent/__agentInfo__",
      "plant/odd-agent/<img src=x>/__classInfo__",
      `plant/odd-agent/${"C".repeat(300)}/__classInfo__`,
    ])
      await c.publishAsync(t, "", { qos: 1, retain: true });
    await c.endAsync();
  }, 30_000);
});

describe("VRPC integrations from the Add form", () => {
  const formValues = (html: string) => ({
    username: /name="username"\s+value="([^"]*)"/.exec(html)?.[1] ?? "",
    password: /name="password" value="([^"]*)"/.exec(html)?.[1] ?? "",
  });

  it("the default username is <domain>/<agent>; an agent started with the defaults appears on the agents page", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "plant/form-neighbour" }); // `plant` is the domain most used here
    const form = await (
      await fetch(`${base}/integrations/new?type=vrpc`, { headers: { cookie, "hx-request": "true" } })
    ).text();
    expect(form).toContain('id="integration-username-hint"'); // the form says which shape does what
    expect(form).toContain("&lt;domain&gt;/&lt;agent&gt;");
    const { username, password } = formValues(form);
    expect(username).toMatch(/^plant\/[a-z]+-[a-z]+-[a-z2-9]{4}$/); // the domain the other VRPC integrations here use
    const [domain, agent] = username.split("/") as [string, string];

    // Switching the type keeps the generated words in each type's shape.
    const switchTo = async (type: string, name: string) =>
      formValues(
        await (
          await fetch(`${base}/integrations/new`, {
            method: "POST",
            headers: {
              cookie,
              "hx-request": "true",
              "content-type": "application/x-www-form-urlencoded",
              origin: base,
            },
            body: new URLSearchParams({ _csrf: csrf, type, username: name, password }),
          })
        ).text(),
      ).username;
    const asMqtt = await switchTo("mqtt", username);
    expect(asMqtt).toBe(`mqtt-${agent}`);
    expect(await switchTo("vrpc", asMqtt)).toBe(username);

    const saved = await fetch(`${base}/integrations`, {
      method: "POST",
      headers: { cookie, "hx-request": "true", "content-type": "application/x-www-form-urlencoded", origin: base },
      body: new URLSearchParams({ _csrf: csrf, type: "vrpc", username, password, description: "" }),
    });
    expect(saved.status).toBe(201);
    const { first } = await startAgent({ DOMAIN: domain, AGENT: agent, USERNAME: username, PASSWORD: password });
    expect(first).toBe("serving");
    await eventually(async () => expect(await listFragment()).toContain(`data-agent="${username}"`));
    expect(
      await (await fetch(`${base}/integrations?q=${encodeURIComponent(username)}`, { headers: { cookie } })).text(),
    ).toContain("Agent, online");
  }, 30_000);

  it("an integration created without a name over the API gets a <domain>/<agent> name too", async () => {
    const created = await api("POST", "/api/v1/integrations", { type: "vrpc" });
    expect((await created.json()).integration.username).toMatch(/^plant\/[a-z]+-[a-z]+-[a-z2-9]{4}$/);
  });

  it("a refused announcement shows on the integration's row and on the agents page", async () => {
    const nodomain = await app.core.credentials.create({ type: "vrpc", username: "vrpc-amber-seal-kxp8" });
    const { first } = await startAgent({
      AGENT: "amber-seal-kxp8",
      USERNAME: "vrpc-amber-seal-kxp8",
      PASSWORD: nodomain.password,
    });
    expect(first).toBe("serving"); // it logs in: only its announcements are refused
    const wrong = await app.core.credentials.create({ type: "vrpc", username: "plant/right-name" });
    await startAgent({ AGENT: "wrong-name", USERNAME: "plant/right-name", PASSWORD: wrong.password });
    await eventually(() =>
      expect(
        app.core.refusedAnnouncements.of(nodomain.integration.id) &&
          app.core.refusedAnnouncements.of(wrong.integration.id),
      ).toBeDefined(),
    );

    const row = await (await fetch(`${base}/integrations?q=vrpc-amber-seal-kxp8`, { headers: { cookie } })).text();
    expect(row).toContain("Agent announcement refused");
    expect(row).toContain("its name has no domain");
    const rightRow = await (await fetch(`${base}/integrations?q=plant%2Fright-name`, { headers: { cookie } })).text();
    expect(rightRow).toContain(
      "it may announce only itself (agent &quot;right-name&quot;), not &quot;wrong-name&quot;",
    );
    const list = await listFragment();
    expect(list).toContain("Refused announcements");
    expect(list).toContain("vrpc-amber-seal-kxp8");
    expect(list).toContain("announced the agent <code>plant/amber-seal-kxp8</code>");
    expect(list).toContain("plant/right-name");
    expect(list).not.toContain('data-agent="plant/amber-seal-kxp8"');
  }, 30_000);
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
    expect(
      await c.subscribeAsync("other/#").then(
        (g) => g[0]?.qos,
        () => 128,
      ),
    ).toBe(128);
    await c.publishAsync("plant/agent-a/__agentInfo__", "", { qos: 1, retain: true });
    await Promise.all([c.endAsync(), w.endAsync()]);
  });
});
