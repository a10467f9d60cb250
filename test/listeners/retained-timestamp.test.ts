import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { appsOfFile, tempDir } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

// A retained value's timestamp, as `GET /api/v1/data/{topic}` shows it, is the time the broker stored it,
// kept in broker.db with the value: the same after a restart (attack2 F10 saw null there).

const { start, stop } = appsOfFile();

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

describe("a retained value's timestamp", () => {
  it("survives a restart, for a value retained over MQTT and one over HTTP; a replaced value gets its own", async () => {
    const dir = tempDir();
    const first = await start([], dir);
    const reader = await first.app.core.credentials.create({ type: "http", username: "reader" });
    const machine = await first.app.core.credentials.create({ type: "mqtt", username: "machine" });
    const auth = basic("reader", reader.password);
    const read = async (base: string, topic: string) => {
      const res = await fetch(`${base}/api/v1/data/${topic}`, { headers: { authorization: auth } });
      expect([topic, res.status]).toEqual([topic, 200]);
      return (await res.json()) as { payload: string; timestamp: string | null };
    };
    const m = await connectMqtt(first.app.address("mqtt")!.port, { username: "machine", password: machine.password });
    await m.publishAsync("plant/mqtt", "1200", { retain: true, qos: 1 });
    await m.publishAsync("plant/replaced", "old", { retain: true, qos: 1 });
    await m.endAsync();
    const posted = await fetch(`${first.url}/api/v1/data/plant/http?retain=true&qos=1`, {
      method: "POST",
      headers: { authorization: auth },
      body: "21.5",
    });
    expect(posted.status).toBe(202);
    const before: Record<string, string> = {};
    for (const topic of ["plant/mqtt", "plant/http", "plant/replaced"]) {
      const { timestamp } = await read(first.url, topic);
      expect([topic, timestamp]).not.toEqual([topic, null]);
      before[topic] = timestamp!;
    }
    await stop(first.app);

    const second = await start([], dir);
    for (const topic of ["plant/mqtt", "plant/http", "plant/replaced"])
      expect([topic, (await read(second.url, topic)).timestamp]).toEqual([topic, before[topic]!]);
    // a new value after the restart has the time it was stored, not the old one's
    const again = await connectMqtt(second.app.address("mqtt")!.port, {
      username: "machine",
      password: machine.password,
    });
    await again.publishAsync("plant/replaced", "new", { retain: true, qos: 1 });
    await again.endAsync();
    const now = await read(second.url, "plant/replaced");
    expect(now.payload).toBe("new");
    expect(Date.parse(now.timestamp!)).toBeGreaterThanOrEqual(Date.parse(before["plant/replaced"]!));
    expect(now.timestamp).not.toBe(before["plant/replaced"]);
  }, 60_000);

  it("a stored time that is not a number costs its row at load, not the start", async () => {
    const dir = tempDir();
    const first = await start([], dir);
    const reader = await first.app.core.credentials.create({ type: "http", username: "reader" });
    const auth = basic("reader", reader.password);
    for (const topic of ["plant/good", "plant/bad"])
      expect(
        (
          await fetch(`${first.url}/api/v1/data/${topic}?retain=true&qos=1`, {
            method: "POST",
            headers: { authorization: auth },
            body: "1",
          })
        ).status,
      ).toBe(202);
    await stop(first.app);
    const db = new Database(join(dir, "broker.db"));
    db.run(`UPDATE retained SET extra = '{"at":"yesterday"}' WHERE topic = 'plant/bad'`);
    db.close();
    const second = await start([], dir);
    const get = (topic: string) => fetch(`${second.url}/api/v1/data/${topic}`, { headers: { authorization: auth } });
    expect((await get("plant/bad")).status).toBe(404);
    const good = await get("plant/good");
    expect(good.status).toBe(200);
    expect((await good.json()).timestamp).not.toBeNull();
  }, 60_000);
});
