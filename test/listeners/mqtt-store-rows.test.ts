import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { appsOfFile, metricValue, tempDir } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

// broker.db rows are checked for range and size at load (attack4 F2, F6): a copied-in file is hostile until checked.

const { start, stop } = appsOfFile();

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

const metric = metricValue;

describe("broker.db rows at load", () => {
  it("a retained value whose stored time is out of range loads without one (not 500); the file size reads at start", async () => {
    const dir = tempDir();
    const first = await start([], dir);
    const dev = await first.app.core.credentials.create({ type: "mqtt", username: "rows-dev" });
    const reader = await first.app.core.credentials.create({ type: "http", username: "rows-reader" });
    const c = await connectMqtt(first.port, { username: "rows-dev", password: dev.password });
    const stamps = [
      "99999999999999999",
      "1e308",
      "8640000000000001",
      "-1",
      "1.5",
      String(Date.now() + 10 * 86_400_000),
    ];
    for (let i = 0; i < stamps.length; i++) await c.publishAsync(`k9/${i}`, `v${i}`, { qos: 1, retain: true });
    await c.publishAsync("k9/good", "fine", { qos: 1, retain: true });
    await c.endAsync();
    await stop(first.app);
    const db = new Database(join(dir, "broker.db"));
    for (let i = 0; i < stamps.length; i++)
      db.run(`UPDATE retained SET extra = '{"at":${stamps[i]}}' WHERE topic = 'k9/${i}'`);
    db.close();
    const second = await start([], dir);
    const auth = basic("rows-reader", reader.password);
    for (let i = 0; i < stamps.length; i++) {
      const res = await fetch(`${second.url}/api/v1/data/k9/${i}`, { headers: { authorization: auth } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { payload: string; timestamp: unknown };
      expect(body.payload).toBe(`v${i}`);
      expect(body.timestamp ?? null).toBeNull();
    }
    const good = (await (
      await fetch(`${second.url}/api/v1/data/k9/good`, { headers: { authorization: auth } })
    ).json()) as {
      timestamp: string;
    };
    expect(Date.parse(good.timestamp)).toBeGreaterThan(Date.now() - 3_600_000);
    // the file's size is known from the start, not only after the first write
    expect(await metric(second.app, "gatehouse_mqtt_store_bytes", '{kind="file"}')).toBeGreaterThan(0);
  }, 60_000);

  it("a retained or queued row larger than --mqtt-max-packet, or with a huge extra, is skipped", async () => {
    const dir = tempDir();
    const args = ["--mqtt-max-packet", "65536"];
    const first = await start(args, dir);
    const dev = await first.app.core.credentials.create({ type: "mqtt", username: "rows-big" });
    const opts = { username: "rows-big", password: dev.password };
    // a persistent session with one queued message
    const s = await connectMqtt(first.port, { ...opts, clientId: "rows-sub", clean: false });
    await s.subscribeAsync("q/#", { qos: 1 });
    await s.endAsync();
    const c = await connectMqtt(first.port, opts);
    for (const t of ["huge/payload", "huge/extra", "huge/ok"])
      await c.publishAsync(t, "small", { qos: 1, retain: true });
    await c.publishAsync("q/one", "queued", { qos: 1 });
    await c.endAsync();
    await stop(first.app);
    const db = new Database(join(dir, "broker.db"));
    db.run("UPDATE retained SET payload = zeroblob(200000) WHERE topic = 'huge/payload'");
    db.run(`UPDATE retained SET extra = ? WHERE topic = 'huge/extra'`, [JSON.stringify({ pad: "x".repeat(100_000) })]);
    db.run("UPDATE messages SET payload = zeroblob(300000)");
    db.close();
    const second = await start(args, dir);
    const found = new Map<string, number>();
    for await (const m of second.app.core.bus.retained("huge/#")) found.set(m.topic, m.payload.length);
    expect([...found.keys()]).toEqual(["huge/ok"]);
    expect(await metric(second.app, "gatehouse_mqtt_queued_messages")).toBe(0);
    expect(await metric(second.app, "gatehouse_mqtt_store_bytes", '{kind="data"}')).toBeLessThan(100_000);
  }, 60_000);
});
