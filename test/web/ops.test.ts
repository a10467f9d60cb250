import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
// @ts-expect-error no type declarations
import parsePrometheus from "parse-prometheus-text-format";
import type { App } from "../../src/app.ts";
import { createLogger, formatJson } from "../../src/lib/logger.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

let app: App;
let url: string;
let dir: string;
let token: string;
beforeAll(async () => {
  ({ app, url, dir } = await testApp(["--opcua-port", "off"]));
  token = app.core.admins.createApiToken("prometheus").token;
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

type Family = { name: string; type: string; metrics: { value: string; labels?: Record<string, string> }[] };
const scrape = async (): Promise<Family[]> => {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  return parsePrometheus(await res.text());
};
const value = (families: Family[], name: string, labels: Record<string, string> = {}) =>
  Number(
    families
      .find((f) => f.name === name)
      ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? 0,
  );

describe("/metrics", () => {
  it("needs a token or an admin; parses as Prometheus text; values move after logins and messages", async () => {
    expect((await fetch(`${url}/metrics`, { redirect: "manual" })).status).toBe(303); // a browser is sent to sign in
    const before = await scrape();
    const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "metered" });
    const c = await connectMqtt(app.address("mqtt")!.port, { username: "metered", password });
    await c.subscribeAsync("m/#");
    await c.publishAsync("m/x", "12345", { qos: 1, retain: true });
    await connectMqtt(app.address("mqtt")!.port, { username: "metered", password: "wrong-one" }).catch(() => undefined);
    const after = await scrape();
    expect(value(after, "gatehouse_logins_total", { protocol: "mqtt", result: "ok" })).toBe(
      value(before, "gatehouse_logins_total", { protocol: "mqtt", result: "ok" }) + 1,
    );
    expect(
      value(after, "gatehouse_logins_total", { protocol: "mqtt", result: "wrong-password" }),
    ).toBeGreaterThanOrEqual(1);
    expect(value(after, "gatehouse_sessions", { type: "mqtt" })).toBeGreaterThanOrEqual(1);
    expect(value(after, "gatehouse_integrations", { type: "mqtt", status: "online" })).toBeGreaterThanOrEqual(1);
    expect(value(after, "gatehouse_mqtt_messages_in_total")).toBeGreaterThan(
      value(before, "gatehouse_mqtt_messages_in_total"),
    );
    expect(
      value(after, "gatehouse_mqtt_bytes_in_total") - value(before, "gatehouse_mqtt_bytes_in_total"),
    ).toBeGreaterThanOrEqual(5);
    expect(value(after, "gatehouse_mqtt_retained_messages")).toBeGreaterThanOrEqual(1);
    expect(value(after, "process_resident_memory_bytes")).toBeGreaterThan(10_000_000);
    expect(value(after, "gatehouse_http_requests_total", { class: "ops", status: "200" })).toBeGreaterThanOrEqual(1);
    await c.endAsync();
    void integration;
  });
});

describe("/healthz and /readyz", () => {
  it("ready when every listener serves and the database is writable; not ready while another process holds the lock", async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({
      status: "ready",
      reasons: [],
      connectors: { uplink: { uplinks: [] } },
    });
    const other = new Database(join(dir, "gatehouse.db"));
    other.run("BEGIN IMMEDIATE");
    try {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect((await res.json()).reasons[0]).toContain("database not writable");
      expect((await fetch(`${url}/healthz`)).status).toBe(200); // alive all the same
    } finally {
      other.run("COMMIT");
      other.close();
    }
  });
});

describe("--log-format json", () => {
  it("writes one JSON object per line with a stable event name, values bounded", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", write: (l) => lines.push(l) });
    log.info("login failed", { username: "x".repeat(1000), reason: "wrong-password", remote: "10.0.0.1" });
    const o = JSON.parse(lines[0]!);
    expect(o).toMatchObject({
      level: "info",
      event: "login_failed",
      msg: "login failed",
      reason: "wrong-password",
      remote: "10.0.0.1",
    });
    expect(o.username.length).toBeLessThan(300);
    expect(JSON.parse(formatJson("warn", "mqtt client dropped", { clientId: "a\nb" })).clientId).toBe("a\nb");
  });
});
