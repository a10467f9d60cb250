import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { buildBinary, runBinary } from "../helpers/binary.ts";
import { signIn } from "../helpers/http.ts";
import { totpCode } from "../../src/core/second-factor.ts";
import { eventually } from "../helpers/wait.ts";
import { connectMqtt, nextMessage, refusalCode } from "../helpers/mqtt.ts";
import { connectOpcua, readValue } from "../helpers/opcua.ts";

let binary: string;
beforeAll(async () => {
  binary = await buildBinary();
}, 120_000);
afterAll(cleanupTempDirs);

const env = { GATEHOUSE_ADMIN_PASSWORD: "e2e-admin-pass" };
const args = (dir: string) => [
  "serve",
  "--data-dir",
  join(dir, "data"),
  "--bind",
  "127.0.0.1",
  "--http-port",
  "0",
  "--https-port",
  "0",
  "--mqtt-port",
  "0",
  "--mqtts-port",
  "0",
  "--opcua-port",
  "0",
];

describe("the compiled binary, alone in an empty folder", () => {
  it("serves, keeps data across a SIGTERM restart, and writes only its data dir", async () => {
    const dir = tempDir("gatehouse-e2e-");
    mkdirSync(join(dir, "home"));
    const first = await runBinary(binary, dir, args(dir), { ...env, HOME: join(dir, "home") });
    const base = `http://127.0.0.1:${first.ports.http}`;
    expect((await fetch(`${base}/assets/htmx.min.js`)).status).toBe(200);

    const { cookie, csrf } = await signIn(base, "admin", env.GATEHOUSE_ADMIN_PASSWORD);
    const created = await fetch(`${base}/api/v1/integrations`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
      body: JSON.stringify({ type: "mqtt", username: "e2e-press" }),
    });
    expect(created.status).toBe(201);
    const { password } = await created.json();
    expect(password).toBeString();

    // An MQTT client gets in with the credentials just created over HTTP, and the page sees it online.
    const client = await connectMqtt(first.ports.mqtt!, { username: "e2e-press", password });
    const got = nextMessage(client);
    await client.subscribeAsync("e2e/#");
    await client.publishAsync("e2e/ping", "pong");
    expect(await got).toEqual({ topic: "e2e/ping", payload: "pong" });
    const seen = await (await fetch(`${base}/api/v1/integrations?q=e2e-press`, { headers: { cookie } })).json();
    expect(seen.items[0].status).toBe("online");
    expect(await refusalCode(first.ports.mqtt!, { username: "e2e-press", password: "wrong-password" })).toBe(4);
    await client.publishAsync("e2e/temp", "19.5", { retain: true, qos: 1 });
    await client.endAsync();

    // OPC UA from the binary: the embedded nodeset, the PKI in the data dir, a username login.
    const scada = await (
      await fetch(`${base}/api/v1/integrations`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
        body: JSON.stringify({ type: "opcua", username: "e2e-scada" }),
      })
    ).json();
    const ua = await connectOpcua(first.ports.opcua!, { userName: "e2e-scada", password: scada.password });
    expect((await readValue(ua.session, "ns=1;s=Gatehouse/Status/Version")).value.value).toBe("0.1.0");
    expect((await readValue(ua.session, "ns=1;s=Topics/e2e/temp")).value.value).toBe(19.5);
    await ua.close();

    // VRPC: a real agent process logs in to the binary's broker; the API lists it and calls it. Its own
    // domain: a VRPC domain is out of reach of the `#` of the other integrations here.
    const agentCred = await (
      await fetch(`${base}/api/v1/integrations`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
        body: JSON.stringify({ type: "vrpc", username: "e2e-vrpc/press-agent" }),
      })
    ).json();
    const agent = Bun.spawn(["bun", join(import.meta.dir, "../fixtures/vrpc-agent.ts")], {
      env: {
        ...process.env,
        BROKER: `mqtt://127.0.0.1:${first.ports.mqtt}`,
        DOMAIN: "e2e-vrpc",
        AGENT: "press-agent",
        USERNAME: "e2e-vrpc/press-agent",
        PASSWORD: agentCred.password,
      },
      stdout: "ignore",
      stderr: "inherit",
    });
    try {
      const answer = await eventually(async () => {
        const res = await fetch(`${base}/api/v1/vrpc/e2e-vrpc/press-agent/Press/speed`, {
          method: "POST",
          headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
          body: "[50]",
        });
        expect(res.status).toBe(200);
        return res.json();
      }, 15_000);
      expect(answer).toEqual({ result: 100 });
    } finally {
      agent.kill("SIGKILL");
    }

    // HTTP integrations: a device posts data with Basic auth; an MQTT-only credential is refused.
    const gw = await (
      await fetch(`${base}/api/v1/integrations`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
        body: JSON.stringify({ type: "http", username: "e2e-gateway" }),
      })
    ).json();
    const device = (user: string, pass: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`,
    });
    expect(
      (
        await fetch(`${base}/api/v1/data/e2e/http`, {
          method: "POST",
          headers: device("e2e-gateway", gw.password),
          body: "42",
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await fetch(`${base}/api/v1/data/e2e/http`, {
          method: "POST",
          headers: device("e2e-press", password),
          body: "42",
        })
      ).status,
    ).toBe(403);

    const oversize = await fetch(`${base}/api/v1/integrations`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
      body: "x".repeat(200_000),
    });
    expect(oversize.status).toBe(413);

    expect(await first.stop("SIGTERM")).toBe(0);
    expect(first.lines.some((l) => l.startsWith("info stopped"))).toBe(true);

    const second = await runBinary(binary, dir, args(dir), { ...env, HOME: join(dir, "home") });
    const again = await signIn(`http://127.0.0.1:${second.ports.http}`, "admin", env.GATEHOUSE_ADMIN_PASSWORD);
    const list = await (
      await fetch(`http://127.0.0.1:${second.ports.http}/api/v1/integrations`, { headers: { cookie: again.cookie } })
    ).json();
    expect(list.items.map((i: { username: string }) => i.username).sort()).toEqual([
      "e2e-gateway",
      "e2e-press",
      "e2e-scada",
      "e2e-vrpc/press-agent",
    ]);
    expect(await second.stop("SIGINT")).toBe(0);

    expect(readdirSync(dir).sort()).toEqual(["data", "gatehouse", "home"]);
    expect(readdirSync(join(dir, "home"))).toEqual([]); // nothing under ~ (node-opcua's default PKI lives there)
    expect(readdirSync(join(dir, "data")).sort()).toEqual(expect.arrayContaining(["gatehouse.db", "pki"]));
  }, 60_000);

  it("two-step sign-in (otpauth, the QR code's SVG) and the backup download work inside the binary", async () => {
    const dir = tempDir("gatehouse-e2e-");
    const run = await runBinary(binary, dir, [...args(dir), "--opcua-port", "off"], env);
    try {
      const base = `http://127.0.0.1:${run.ports.http}`;
      const { cookie, csrf } = await signIn(base, "admin", env.GATEHOUSE_ADMIN_PASSWORD);
      const post = (path: string, form: Record<string, string> = {}) =>
        fetch(`${base}${path}`, {
          method: "POST",
          redirect: "manual",
          headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: base },
          body: new URLSearchParams({ _csrf: csrf, ...form }),
        });
      expect((await post("/settings/2fa/start")).status).toBe(303);
      const setup = await (await fetch(`${base}/settings/2fa`, { headers: { cookie } })).text();
      expect(setup).toContain("<svg");
      const secret = setup.match(/class="secret-value">\s*([A-Z2-7]{32})/)![1]!;
      const on = await post("/settings/2fa/confirm", { code: totpCode(secret) });
      expect(on.status).toBe(200);
      expect(new Set((await on.text()).match(/[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}/g)).size).toBe(10);
      // the password now leads to the code form; the next step's code opens a session
      const form = await fetch(`${base}/login`);
      const pre = form.headers.get("set-cookie")!.split(";")[0]!;
      const preCsrf = (await form.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const step1 = await fetch(`${base}/login`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: pre, "content-type": "application/x-www-form-urlencoded", origin: base },
        body: new URLSearchParams({ _csrf: preCsrf, username: "admin", password: env.GATEHOUSE_ADMIN_PASSWORD }),
      });
      expect(step1.status).toBe(200);
      const cookies = step1.headers.getSetCookie().map((c) => c.split(";")[0]!);
      expect(cookies.some((c) => c.startsWith("gh_session="))).toBe(false);
      const codeCsrf = (await step1.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      const step2 = await fetch(`${base}/login/code`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: cookies.join("; "), "content-type": "application/x-www-form-urlencoded", origin: base },
        body: new URLSearchParams({ _csrf: codeCsrf, code: totpCode(secret, Date.now() + 30_000) }),
      });
      expect(step2.status).toBe(303);
      expect(step2.headers.getSetCookie().some((c) => c.startsWith("gh_session="))).toBe(true);
      // the backup, streamed from the binary: a SQLite file
      const backup = await post("/settings/backup/database");
      expect(backup.status).toBe(200);
      const bytes = Buffer.from(await backup.arrayBuffer());
      expect(bytes.subarray(0, 15).toString()).toBe("SQLite format 3");
      // sent as a file, with its length (attack3 F4 saw none from the binary)
      expect(backup.headers.get("transfer-encoding")).toBeNull();
      expect(Number(backup.headers.get("content-length"))).toBe(bytes.length);
    } finally {
      await run.stop("SIGTERM");
    }
  }, 120_000);

  it("stops cleanly on a SIGTERM that arrives while OPC UA is still starting", async () => {
    const dir = tempDir("gatehouse-e2e-");
    const { copyFileSync } = await import("node:fs");
    copyFileSync(binary, join(dir, "gatehouse"));
    const proc = Bun.spawn([join(dir, "gatehouse"), ...args(dir)], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", HOME: dir, ...env },
      stdout: "pipe",
    });
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("listener=http")) out += new TextDecoder().decode((await reader.read()).value);
    expect(out).not.toContain("info ready"); // OPC UA is still on its way
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 30_000);

  it("an uplink's connection writes nothing outside the log's format (found from outside: a DEP0169 warning on stderr)", async () => {
    // mqtt.js parsed the broker's URL with Node's url.parse; the warning shows only in the binary (from the
    // source tree, code under node_modules is spared it)
    const dir = tempDir("gatehouse-e2e-");
    const { freePort } = await import("../helpers/upstream.ts");
    const run = await runBinary(binary, dir, [...args(dir), "--uplink-reconnect-max", "1"], env);
    try {
      const cli = Bun.spawnSync(
        [
          join(dir, "gatehouse"),
          "uplinks",
          "add",
          "nowhere",
          "--url",
          `mqtt://127.0.0.1:${await freePort()}`,
          "--forward",
          "a/#",
        ],
        { cwd: dir, env: { PATH: process.env.PATH ?? "", GATEHOUSE_DATA_DIR: join(dir, "data") } },
      );
      expect(cli.exitCode).toBe(0);
      await run.waitFor(/^warn uplink error /, 15_000); // the running appliance took it up and tried
      expect(run.lines.filter((l) => !/^(debug|info|warn|error) /.test(l))).toEqual([]);
    } finally {
      await run.stop();
    }
  }, 60_000);

  it("exits 2 with a clear message on a bad flag or an unusable data dir", async () => {
    const dir = tempDir("gatehouse-e2e-");
    const { copyFileSync, writeFileSync } = await import("node:fs");
    copyFileSync(binary, join(dir, "gatehouse"));
    const bad = Bun.spawnSync([join(dir, "gatehouse"), "--http-port", "http"], { cwd: dir });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("--http-port must be a port number");
    writeFileSync(join(dir, "file"), "not a folder");
    const unusable = Bun.spawnSync(
      [join(dir, "gatehouse"), "--data-dir", join(dir, "file", "data"), "--http-port", "0"],
      { cwd: dir },
    );
    expect(unusable.exitCode).toBe(2);
    expect(unusable.stdout.toString()).toContain("is not usable");
    const help = Bun.spawnSync([join(dir, "gatehouse"), "--help"], { cwd: dir });
    expect(help.exitCode).toBe(0);
    for (const flag of ["--data-dir", "--bind", "--http-port", "--mqtt-port", "--opcua-port", "GATEHOUSE_HTTP_PORT"])
      expect(help.stdout.toString()).toContain(flag);
  }, 30_000);
});
