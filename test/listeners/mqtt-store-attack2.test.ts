import { describe, expect, it } from "bun:test";
import type { IClientOptions } from "mqtt";
import type { App } from "../../src/app.ts";
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StartRefused } from "../../src/lib/errors.ts";
import { brokerDbVersion } from "../../src/listeners/mqtt/broker-db.ts";
import { appsOfFile, newDataDir, tempDir, testApp } from "../helpers/app.ts";
import { connectMqtt, rawMqtt, subackCodes } from "../helpers/mqtt.ts";
import { startServe } from "../helpers/serve.ts";

/** The broker store against what one credential can make it keep, and broker.db files from outside (findings attack2). */
const { start, stop: stopApp } = appsOfFile();

const made = async (app: App, username: string) => {
  const { password } = await app.core.credentials.create({ type: "mqtt", username });
  return (extra: IClientOptions = {}): IClientOptions => ({ username, password, ...extra });
};

const filters = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}/${i}/#`);

describe("subscriptions are bounded (F1)", () => {
  it("a session holds at most --mqtt-max-subscriptions: SUBACK 0x97 at MQTT 5, 0x80 at 3.1.1, past it", async () => {
    const { app, port } = await start(["--mqtt-max-subscriptions", "5"]);
    const opts = await made(app, "subs-a");
    const v5 = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-v5", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    // one SUBSCRIBE of 7 new filters: 5 granted, 2 refused as over quota
    expect(await subackCodes(v5, filters("plant/a", 7))).toEqual([0, 0, 0, 0, 0, 0x97, 0x97]);
    // a filter the session holds already is only a change of options
    expect(await subackCodes(v5, ["plant/a/0/#"])).toEqual([0]);
    expect(await subackCodes(v5, ["plant/b"])).toEqual([0x97]);
    await v5.endAsync();
    const v4 = await connectMqtt(port, opts({ protocolVersion: 4, clientId: "subs-v4" }));
    expect(await subackCodes(v4, filters("plant/c", 6))).toEqual([0, 0, 0, 0, 0, 0x80]);
    await v4.endAsync();
    // the refused filters were not stored with the persistent session
    const again = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-v5", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(again, ["plant/a/6/#"])).toEqual([0x97]);
    await again.endAsync();
  });

  it("an integration's stored sessions hold at most --mqtt-max-integration-subscriptions together", async () => {
    const { app, port } = await start(["--mqtt-max-integration-subscriptions", "6"]);
    const opts = await made(app, "subs-b");
    const one = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-b1", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(one, filters("plant/d", 4))).toEqual([0, 0, 0, 0]);
    await one.endAsync();
    const two = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-b2", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(two, filters("plant/e", 4))).toEqual([0, 0, 0x97, 0x97]);
    await two.endAsync();
    // another integration is not affected
    const other = await connectMqtt(
      port,
      (await made(app, "subs-c"))({
        protocolVersion: 5,
        clean: false,
        clientId: "c1",
        properties: { sessionExpiryInterval: 3600 },
      }),
    );
    expect(await subackCodes(other, filters("plant/f", 4))).toEqual([0, 0, 0, 0]);
    await other.endAsync();
  });
});

describe("broker.db and its companions are never followed through a link (F2)", () => {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    it(`broker.db${suffix} as a symlink to a file outside: refused, the target neither written nor chmod'ed`, async () => {
      const dir = newDataDir();
      if (suffix !== "") {
        // a real broker.db beside the planted link, so the open gets as far as the companion files
        const first = await testApp(["--opcua-port", "off"], {}, {}, dir);
        await first.app.stop();
      }
      const victim = join(tempDir(), "victim");
      writeFileSync(victim, "not yours");
      chmodSync(victim, 0o644);
      symlinkSync(victim, join(dir, `broker.db${suffix}`));
      const started = testApp(["--opcua-port", "off"], {}, {}, dir);
      await expect(started).rejects.toBeInstanceOf(StartRefused);
      await expect(started).rejects.toThrow(/symlink/);
      expect(statSync(victim).mode & 0o777).toBe(0o644);
      expect(readFileSync(victim, "utf8")).toBe("not yours");
    });
  }

  it("a dangling broker.db link makes no file outside the data dir", async () => {
    const dir = newDataDir();
    const target = join(tempDir(), "dangling.db");
    symlinkSync(target, join(dir, "broker.db"));
    await expect(testApp(["--opcua-port", "off"], {}, {}, dir)).rejects.toBeInstanceOf(StartRefused);
    expect(existsSync(target)).toBe(false);
  });
});

/** withBrokerDb: a data dir whose broker.db holds one retained value, then `edit` done to it with SQLite. */
async function withBrokerDb(edit: (db: Database) => void): Promise<string> {
  const { app, port, dir } = await start();
  const opts = await made(app, "ret");
  const c = await connectMqtt(port, opts());
  await c.publishAsync("plant/good", "kept", { qos: 1, retain: true });
  await c.endAsync();
  await stopApp(app);
  const db = new Database(join(dir, "broker.db"));
  edit(db);
  db.close();
  return dir;
}

const retainedRow = (db: Database, topic: string, payload: unknown, qos: number, extra: string | null) =>
  db
    .query("INSERT INTO retained (topic, payload, qos, retain, extra) VALUES (?1, ?2, ?3, 1, ?4)")
    .run(topic, payload as never, qos, extra);

describe("one bad row or a missing table costs that, not the appliance (F3)", () => {
  it("bad retained rows (bad JSON, TEXT payload, a wildcard topic, QoS 9) are skipped and logged; the good one is served", async () => {
    const dir = await withBrokerDb((db) => {
      retainedRow(db, "plant/json", Buffer.from("x"), 0, "{{bad json");
      retainedRow(db, "plant/text", "text, not bytes", 0, null);
      retainedRow(db, "plant/#", Buffer.from("wild"), 0, null);
      retainedRow(db, "plant/qos", Buffer.from("q"), 9, null);
    });
    const { app, port, lines } = await start([], dir);
    expect(lines.some((l) => l.includes("rows this release did not write were skipped"))).toBe(true);
    const c = await connectMqtt(port, (await made(app, "reader"))());
    const got: string[] = [];
    const done = new Promise<void>((resolve) =>
      c.on("message", (topic, payload) => {
        got.push(`${topic}=${payload}`);
        if (topic === "plant/good") resolve();
      }),
    );
    await c.subscribeAsync("plant/#", { qos: 1 });
    await done;
    await c.subscribeAsync("plant/good", { qos: 1 }); // a second round trip: nothing else was on its way
    expect(got).toEqual(["plant/good=kept"]);
    await c.endAsync();
    const db = new Database(join(dir, "broker.db"));
    // deleted from the file too (written behind the load)
    await stopApp(app);
    expect((db.query("SELECT topic FROM retained").all() as { topic: string }[]).map((r) => r.topic)).toEqual([
      "plant/good",
    ]);
    db.close();
  });

  it("a broker.db of this version without a table is moved aside; the broker starts empty", async () => {
    const dir = await withBrokerDb((db) => db.run("DROP TABLE retained"));
    const { app, lines } = await start([], dir);
    expect(lines.some((l) => l.includes("broker.db could not be read: moved aside"))).toBe(true);
    expect(readdirSync(dir).some((n) => n.startsWith("broker.db.unreadable-"))).toBe(true);
    await stopApp(app);
  });

  it("a broker.db of a newer release: serve exits 2 with one clear line, the file left as it is", async () => {
    const dir = await withBrokerDb((db) => db.run(`PRAGMA user_version = ${brokerDbVersion + 1}`));
    const before = readFileSync(join(dir, "broker.db"));
    const s = startServe(dir, ["--mqtt-port", "0"]);
    expect(await s.waitFor(/newer release/)).toMatch(/move the file away/);
    expect(await s.proc.exited).toBe(2);
    expect(readFileSync(join(dir, "broker.db")).equals(before)).toBe(true);
  });
});

/** connectBytes: a CONNECT whose client id is `id` as raw bytes (what no client library sends), clean, with a login. */
function connectBytes(version: 4 | 5, id: Buffer, username: string, password: string): Uint8Array {
  const str = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
  const head = Buffer.concat([
    str(Buffer.from("MQTT")),
    Buffer.from([version, 0xc2, 0, 30]),
    version === 5 ? Buffer.from([0]) : Buffer.alloc(0),
  ]);
  const body = Buffer.concat([head, str(id), str(Buffer.from(username)), str(Buffer.from(password))]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

describe("client ids are well-formed UTF-8 [MQTT-1.5.3] (F9)", () => {
  const bad = {
    NUL: Buffer.from("zed1\0evil", "latin1"),
    "invalid UTF-8": Buffer.from([0x7a, 0x65, 0x64, 0xff, 0xfe]),
    "a surrogate": Buffer.from([0x7a, 0x65, 0x64, 0xed, 0xa0, 0x80]),
  };
  for (const [what, id] of Object.entries(bad)) {
    it(`a client id with ${what}: 3.1.1 closed without CONNACK, MQTT 5 CONNACK 0x85`, async () => {
      const { app, port } = await start();
      const { password } = await app.core.credentials.create({ type: "mqtt", username: "zed" });
      const v4 = await rawMqtt(port, "127.0.0.1", 4);
      v4.send(connectBytes(4, id, "zed", password));
      expect(await v4.next()).toBeUndefined();
      const v5 = await rawMqtt(port, "127.0.0.1", 5);
      v5.send(connectBytes(5, id, "zed", password));
      const connack = await v5.next();
      expect(connack?.cmd).toBe("connack");
      expect(connack?.reasonCode).toBe(0x85);
      await v5.closed;
      // a well-formed id with the same login still gets in
      const ok = await rawMqtt(port, "127.0.0.1", 4);
      ok.send(connectBytes(4, Buffer.from("zed-ok"), "zed", password));
      expect((await ok.next())?.returnCode).toBe(0);
      ok.destroy();
    });
  }
});

describe("the store cap holds under a burst (F6)", () => {
  it("1500 new retained topics of 1000 bytes published at once stay within --mqtt-store-max-bytes", async () => {
    const cap = 1024 * 1024; // the smallest allowed
    // one integration may hold the whole store here: this is the global cap (its share: mqtt-store-share.test.ts)
    const { app, port } = await start([
      "--mqtt-store-max-bytes",
      String(cap),
      "--mqtt-store-max-integration-bytes",
      String(cap),
    ]);
    const c = await connectMqtt(port, (await made(app, "burst"))());
    const payload = Buffer.alloc(1000, 7);
    // not awaited one by one: aedes handles them together, as fillret.js's burst was
    await Promise.all(
      Array.from({ length: 1500 }, (_, i) => c.publishAsync(`fill/${i}`, payload, { qos: 1, retain: true })),
    );
    await c.endAsync();
    const text = await app.core.metrics.render();
    const line = text.split("\n").find((l) => l.startsWith('gatehouse_mqtt_store_bytes{kind="data"} '))!;
    const data = Number(line.split(" ")[1]);
    expect(data).toBeGreaterThan(cap / 2);
    expect(data).toBeLessThanOrEqual(cap);
  });
});
