import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  statfsSync,
  symlinkSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import * as mqttPacket from "mqtt-packet";
import { type App, createApp } from "../../src/app.ts";
import { parseServeConfig } from "../../src/config.ts";
import { delayFor } from "../../src/connectors/uplink/connection.ts";
import { Outbox } from "../../src/connectors/uplink/outbox.ts";
import { decodeRows, encodeWrite, type OutboxRow, rangesOffset } from "../../src/connectors/uplink/outbox-protocol.ts";
import { noteSetAside, readStatuses, setAsideNote } from "../../src/connectors/uplink/status-file.ts";
import { UplinkStore } from "../../src/connectors/uplink/store.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import type { AppError } from "../../src/lib/errors.ts";
import { cleanupTempDirs, memoryLog, newDataDir, tempDir, testApp, testHashCost } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { freePort } from "../helpers/upstream.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

/** cliStatus: `gatehouse uplinks status --json` on `dir`: its first uplink's status (it must exit 0, silent on stderr) */
function cliStatus(dir: string) {
  const st = Bun.spawnSync(
    ["bun", join(import.meta.dir, "../../src/main.ts"), "uplinks", "status", "--json", "--data-dir", dir],
    { env: { ...process.env, GATEHOUSE_DATA_DIR: "" } },
  );
  expect([st.exitCode, st.stderr.toString()]).toEqual([0, ""]);
  return JSON.parse(st.stdout.toString())[0];
}

/**
 * smallDisk: a new temp dir with a tmpfs of `size` mounted on it (a disk that fills up); undefined, said,
 * where mounting needs root. The caller unmounts it (`umount -l`).
 */
function smallDisk(tag: string, size: string): string | undefined {
  const dir = tempDir(tag);
  if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]).exitCode === 0) return dir;
  console.warn("skipped: mounting a small tmpfs (a disk that fills up) needs root");
  return undefined;
}

/** ackingUpstream: an MQTT 3.1.1 broker on `port` (0: any) that acknowledges every QoS 1 PUBLISH; `seen` hears each topic. */
async function ackingUpstream(port = 0, seen?: (topic: string) => void) {
  const server = createServer((socket) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => {
      if (p.cmd === "connect")
        socket.write(mqttPacket.generate({ cmd: "connack", returnCode: 0, sessionPresent: false }));
      if (p.cmd !== "publish") return;
      seen?.(p.topic);
      if (p.qos === 1) socket.write(mqttPacket.generate({ cmd: "puback", messageId: p.messageId! }));
    });
    socket.on("data", (d: Buffer) => parser.parse(d));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

/**
 * limitedUpstream: an MQTT broker (3.1.1 or 5) that closes the connection at a PUBLISH longer than `limit()`
 * (as Mosquitto does past max_packet_size; MQTT 5: it says `maximumPacketSize` in its CONNACK, if given) and
 * acknowledges the others; `got`: the topics it took, in order; `connections`: how many it accepted.
 */
async function limitedUpstream(protocolVersion: 4 | 5, limit: () => number, maximumPacketSize?: number) {
  const got: string[] = [];
  const state = { connections: 0 };
  const server = createServer((socket) => {
    state.connections++;
    const parser = mqttPacket.parser({ protocolVersion });
    const opts = { protocolVersion };
    parser.on("packet", (p) => {
      if (socket.destroyed) return; // what came after it in the same read
      if (p.cmd === "connect") {
        const properties = maximumPacketSize ? { maximumPacketSize } : undefined;
        socket.write(
          mqttPacket.generate(
            { cmd: "connack", returnCode: 0, reasonCode: 0, sessionPresent: false, properties } as never,
            opts,
          ),
        );
      }
      if (p.cmd !== "publish") return;
      if ((p.length ?? 0) > limit()) return socket.destroy();
      got.push(p.topic);
      if (p.qos === 1)
        socket.write(mqttPacket.generate({ cmd: "puback", messageId: p.messageId!, reasonCode: 0 } as never, opts));
    });
    socket.on("data", (d: Buffer) => parser.parse(d));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, got, state };
}

/** Held: what a test on a small disk leaves running; `withSmallDisk` stops it */
interface Held {
  app?: App;
  upstream?: { close(): unknown };
}

/**
 * withSmallDisk: `body` on a new tmpfs of `size` (see `smallDisk`: skipped, said, where mounting needs root);
 * the app and the upstream it leaves in `held` are stopped and the disk unmounted after it, however it ends.
 */
async function withSmallDisk(tag: string, size: string, body: (dir: string, held: Held) => Promise<void>) {
  const dir = smallDisk(tag, size);
  if (!dir) return;
  const held: Held = {};
  try {
    await body(dir, held);
  } finally {
    held.upstream?.close();
    try {
      await held.app?.stop();
    } finally {
      Bun.spawnSync(["umount", "-l", dir]);
    }
  }
}

/** uplinkApi: uplinks made and read through the API, with one admin token (`token`) */
function uplinkApi(app: App, url: string) {
  const token = app.core.admins.createApiToken("t").token;
  const headers = { authorization: `Bearer ${token}` };
  const get = async (path: string) => (await fetch(`${url}/api/v1/uplinks${path}`, { headers })).json();
  return {
    token,
    /** add: one uplink (201); returns a reader of its status */
    async add(body: Record<string, unknown>) {
      const made = await fetch(`${url}/api/v1/uplinks`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(made.status).toBe(201);
      return async () => (await get(`/${body.name}`)).status;
    },
    /** queued: what all the uplinks hold together */
    async queued() {
      return ((await get("")) as { items: { status: { queued: number } }[] }).items.reduce(
        (n, u) => n + u.status.queued,
        0,
      );
    },
  };
}

/** device: an MQTT integration that may publish under `acl`, connected by mqtt.js (its username as client id) */
async function device(app: App, username: string, acl: string[], protocolVersion: 4 | 5 = 5) {
  const { password } = await app.core.credentials.create({ type: "mqtt", username, publishAcl: acl });
  return connectMqtt(app.address("mqtt")!.port, { username, password, clientId: username, protocolVersion });
}

/** refusals: `n` QoS 1 publishes at once, the i-th on `topic(i)`: how many the appliance refused */
async function refusals(plc: MqttClient, n: number, topic: (i: number) => string, payload: Buffer): Promise<number> {
  const answers = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      plc.publishAsync(topic(i), payload, { qos: 1 }).then(
        () => 0,
        () => 1,
      ),
    ),
  );
  return answers.reduce((a, b) => a + b, 0);
}

describe("reconnect backoff", () => {
  it("full jitter: each delay is uniform in [0, min(cap, base * 2^attempt)]", () => {
    const b = { baseMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((a) => delayFor(a, b, () => 0.999999))).toEqual([
      999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999,
    ]);
    expect(delayFor(7, b, () => 0)).toBe(0);
    // a thousand appliances after the same outage spread over the whole window, not in lockstep
    const delays = Array.from({ length: 1000 }, () => delayFor(5, b));
    expect(Math.min(...delays)).toBeLessThan(3000);
    expect(Math.max(...delays)).toBeGreaterThan(27_000);
    expect(Math.max(...delays)).toBeLessThan(30_000);
  });
});

describe("the uplink store", () => {
  const store = () => {
    const dir = tempDir();
    const db = openDataDir(dir);
    return { dir, db, store: new UplinkStore(db, dir) };
  };
  const valid = { name: "cloud", urls: ["mqtts://broker.example:8883"], forward: ["plant/#"] };

  it("gives each new uplink a client id of its own: two appliances of one image, same host and name, differ; it stays", () => {
    const [a, b] = [store().store, store().store];
    const [ida, idb] = [a.create(valid).clientId, b.create(valid).clientId];
    const host =
      hostname()
        .replace(/[^A-Za-z0-9-]/g, "")
        .slice(0, 40) || "appliance";
    for (const id of [ida, idb]) expect(id).toMatch(new RegExp(`^gatehouse-${host}-cloud-[0-9a-f]{8}$`));
    expect(ida).not.toBe(idb);
    // kept across changes (a persistent session upstream is found by it), a rename included
    expect(a.update("cloud", { name: "cloud-2", forward: ["x/#"] }).clientId).toBe(ida);
    expect(a.create({ ...valid, name: "n".repeat(64), clientId: undefined }).clientId.length).toBeLessThanOrEqual(128);
  });

  it("refuses what cannot work, naming each field", () => {
    const { store: s } = store();
    const problems = (input: Parameters<UplinkStore["create"]>[0]) => {
      try {
        s.create(input);
      } catch (err) {
        return Object.keys((err as AppError).fields).sort();
      }
      return [];
    };
    expect(problems({ ...valid, name: "../x" })).toEqual(["name"]);
    expect(problems({ ...valid, urls: ["http://broker.example"] })).toEqual(["urls"]);
    expect(problems({ ...valid, urls: ["mqtt://user:secret@broker.example"] })).toEqual(["urls"]);
    expect(problems({ ...valid, urls: [] })).toEqual(["urls"]);
    expect(problems({ ...valid, forward: [] })).toEqual(["forward"]);
    expect(problems({ ...valid, forward: ["a/#/b"] })).toEqual(["forward"]);
    expect(problems({ ...valid, remotePrefix: "site" })).toEqual(["remotePrefix"]);
    expect(problems({ ...valid, remotePrefix: "site/+/" })).toEqual(["remotePrefix"]);
    expect(problems({ ...valid, subscribe: ["cmd/#"] })).toEqual(["localPrefix"]);
    expect(problems({ ...valid, subscribe: ["cmd/#"], localPrefix: "$SYS/" })).toEqual(["localPrefix"]);
    expect(problems({ ...valid, qos: 2, protocol: 3, inflight: 0 })).toEqual(["inflight", "protocol", "qos"]);
    // MQTT packet identifiers are 16 bits: no more can be unacknowledged on one connection
    expect(problems({ ...valid, name: "w1", inflight: 65_535 })).toEqual([]);
    expect(problems({ ...valid, inflight: 65_536 })).toEqual(["inflight"]);
    // a window of its own for a WAN round trip, unless configured (Mosquitto's bridge keeps none)
    expect(s.create({ ...valid, name: "w2" }).inflight).toBe(10_000);
    expect(problems({ ...valid, ca: "not a certificate" })).toEqual(["ca"]);
    // [MQTT-3.1.2-22] a 3.1.1 broker closes a CONNECT with a password and no user name; MQTT 5 allows it
    expect(problems({ ...valid, password: "pw" })).toEqual(["username"]);
    expect(problems({ ...valid, name: "v5-pw", password: "pw", protocol: 5 })).toEqual([]);
    expect(problems({ ...valid, clientKey: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" })).toEqual([
      "clientCert",
      "clientKey",
    ]);
    expect(problems(valid)).toEqual([]);
    expect(() => s.create(valid)).toThrow(/exists/);
  });

  it("seals the password with the data dir's key: another appliance's copy of the database cannot use it", () => {
    const { dir, db, store: s } = store();
    s.create({ ...valid, username: "edge", password: "Needle-in-the-db" });
    expect(s.configs()[0]!.password).toBe("Needle-in-the-db");
    expect(s.list()[0]).not.toHaveProperty("password");
    db.$client.run("PRAGMA wal_checkpoint(TRUNCATE)");
    const other = tempDir();
    copyFileSync(join(dir, "gatehouse.db"), join(other, "gatehouse.db"));
    const copy = new UplinkStore(openDataDir(other), other);
    const c = copy.configs()[0]!;
    expect(c.password).toBeUndefined();
    expect(c.secretProblem).toMatch(/another key/);
    const row = new Database(join(dir, "gatehouse.db")).query("SELECT password FROM uplinks").get() as {
      password: string;
    };
    expect(row.password).toStartWith("v2:");
    expect(row.password).not.toContain("Needle");
  });

  it("seals a secret for its URLs: a row edited outside Gatehouse (a doctored backup) no longer opens it", () => {
    // found from outside: a backup whose uplink URL was changed to plain mqtt:// on another port, restored,
    // sent the password given for mqtts:// there
    const { dir, db, store: s } = store();
    const urls = ["mqtts://broker.example:8883", "mqtts://broker2.example:8883"];
    s.create({ ...valid, urls, username: "edge", password: "Needle-in-the-db", clientCert: null });
    // changes the store allows keep it usable: sealed again for the URLs left, in any order
    s.update("cloud", { urls: ["mqtts://broker2.example", "mqtts://broker.example:8883"] });
    s.update("cloud", { urls: ["mqtts://broker2.example:8883"] });
    expect(s.configs()[0]!.password).toBe("Needle-in-the-db");
    const edit = (to: string[]) => db.$client.run("UPDATE uplinks SET urls = ?", [JSON.stringify(to)]);
    for (const doctored of [["mqtt://broker2.example:8883"], ["mqtts://broker2.example:1"], ["mqtts://evil.example"]]) {
      edit(doctored);
      const c = s.configs()[0]!;
      expect([doctored, c.password, c.secretProblem]).toEqual([
        doctored,
        undefined,
        expect.stringMatching(/given for others/),
      ]);
    }
    // put back, it opens again; given again, it is sealed for the new URL
    edit(["mqtts://broker2.example:8883"]);
    expect(s.configs()[0]!.password).toBe("Needle-in-the-db");
    edit(["mqtt://broker2.example:8883"]);
    s.update("cloud", { password: "a-new-one" });
    expect(s.configs()[0]!).toMatchObject({ password: "a-new-one", urls: ["mqtt://broker2.example:8883"] });
    // a secret an earlier release sealed (v1, bound to nothing) still opens
    const v1 = (() => {
      const { createCipheriv, randomBytes } = require("node:crypto") as typeof import("node:crypto");
      const key = readFileSync(join(dir, "uplink-secrets.key"));
      const iv = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([c.update("old-release-secret", "utf8"), c.final()]);
      return `v1:${Buffer.concat([iv, body, c.getAuthTag()]).toString("base64")}`;
    })();
    db.$client.run("UPDATE uplinks SET password = ?", [v1]);
    expect(s.configs()[0]!.password).toBe("old-release-secret");
  });
});

describe("export and import --full", () => {
  it("carries uplinks with their secrets into another data dir (sealed under its key); a name taken refuses the whole file", async () => {
    const main = join(import.meta.dir, "../../src/main.ts");
    const run = (args: string[], stdin?: string) =>
      Bun.spawnSync(["bun", main, ...args], {
        stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
        env: { ...process.env, GATEHOUSE_DATA_DIR: "" },
      });
    const from = newDataDir();
    const add = (dir: string, name: string) =>
      run(
        [
          "uplinks",
          "add",
          name,
          "--url",
          "mqtt://127.0.0.1:1883",
          "--forward",
          "a/#",
          "--username",
          "u",
          "--password-stdin",
        ].concat(["--data-dir", dir]),
        "upstream-secret-7\n",
      );
    expect(add(from, "carried").exitCode).toBe(0);
    expect(run(["integrations", "add", "--type", "mqtt", "--username", "dev-1", "--data-dir", from]).exitCode).toBe(0);
    const file = join(tempDir(), "full.json");
    expect(run(["export", "--full", file, "--data-dir", from]).exitCode).toBe(0);

    const to = newDataDir();
    const imported = run(["import", "--full", file, "--data-dir", to]);
    expect(imported.stderr.toString()).toBe("");
    expect(imported.stdout.toString()).toContain("1 uplink(s)");
    const db = openDataDir(to);
    try {
      const [u] = new UplinkStore(db, to).configs();
      expect(u?.name).toBe("carried");
      expect(u?.password).toBe("upstream-secret-7"); // opened with this data dir's own key
      expect(readFileSync(join(to, "gatehouse.db")).includes("upstream-secret-7")).toBe(false);
    } finally {
      db.$client.close();
    }

    // a third data dir that has an uplink of that name: refused, and nothing of the file is taken
    const taken = newDataDir();
    expect(add(taken, "carried").exitCode).toBe(0);
    const refused = run(["import", "--full", file, "--data-dir", taken]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr.toString()).toContain("carried");
    const list = run(["integrations", "list", "--json", "--data-dir", taken]).stdout.toString();
    expect(list).not.toContain("dev-1");
  }, 60_000);
});

describe("the outbox", () => {
  it("says it is behind once more than its bound waits for the writer, rows or bytes, and not once written", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir, { maxBehind: { rows: 100, bytes: 10_000 } });
    for (let i = 0; i < 99; i++) outbox.append(1, "t/x", Buffer.from("1"), false, null);
    expect(outbox.behind()).toBeUndefined();
    outbox.append(1, "t/x", Buffer.from("1"), false, null);
    expect(outbox.behind()).toMatch(/writer is behind \(100 messages or 10000 bytes/);
    await outbox.durable();
    expect(outbox.behind()).toBeUndefined();
    outbox.append(1, "t/x", Buffer.alloc(10_000), false, null); // one large message is the byte bound
    expect(outbox.behind()).toMatch(/writer is behind/);
    await outbox.durable();
    expect(outbox.behind()).toBeUndefined();
    await outbox.close();
  });

  it("keeps appended messages in order across a close and a reopen; newest retained per topic marked", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    for (let i = 0; i < 1000; i++) outbox.append(1, `t/${i % 3}`, Buffer.from(String(i)), i % 3 === 0, null);
    await outbox.durable();
    await outbox.close();
    const again = await Outbox.open(dir);
    expect(again.stats.get(1)?.count).toBe(1000);
    const rows = again.outbox.fetch(1, 0, 2000).rows;
    expect(rows.map((r) => again.outbox.payload(r.id)!.toString())).toEqual([...Array(1000).keys()].map(String));
    // the bounds may drop any of them but the last retained message of t/0
    const droppable = again.outbox.oldest(1, 0, 2000);
    expect(droppable).toHaveLength(999);
    expect(droppable.map((d) => d.id)).not.toContain(rows[999]!.id);
    await again.outbox.close();
  });

  it("stores exactly the bytes of a payload that is a view into a larger buffer (as a socket's chunk), in one write", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    // views at odd offsets and of odd sizes, an empty one, and one written after an earlier write landed
    const views = [
      chunk.subarray(3, 67),
      chunk.subarray(1000, 1000),
      chunk.subarray(4097, 9000),
      chunk.subarray(65_000),
    ];
    for (const v of views) outbox.append(1, "t/v", v, false, null);
    await outbox.durable();
    outbox.append(1, "t/v", chunk.subarray(7, 8), false, '{"contentType":"x"}');
    await outbox.durable();
    await outbox.close();
    const again = await Outbox.open(dir);
    const rows = again.outbox.fetch(1, 0, 10).rows;
    expect(
      rows.map((r) => Buffer.compare(again.outbox.payload(r.id)!, [...views, chunk.subarray(7, 8)][rows.indexOf(r)]!)),
    ).toEqual([0, 0, 0, 0, 0]);
    expect(rows.map((r) => r.size)).toEqual([3 + 64, 3, 3 + 4903, 3 + 536, 3 + 1]);
    expect(rows[4]!.props).toBe('{"contentType":"x"}');
    await again.outbox.close();
  });

  it("deletes exactly the rows removed, however their ids interleave (as runs of consecutive ids)", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    const ids = Array.from(
      { length: 60 },
      (_, i) => outbox.append(1 + (i % 2), `t/${i}`, Buffer.from("x"), false, null)[0],
    );
    await outbox.durable();
    // acknowledged out of order, with gaps, twice over, and one id that is not there
    const gone = [...ids.slice(10, 30).reverse(), ids[0]!, ids[2]!, ids[59]!, ids[11]!, 10_000];
    outbox.remove(gone);
    outbox.append(1, "t/last", Buffer.from("y"), false, null);
    await outbox.durable();
    await outbox.close();
    const again = await Outbox.open(dir);
    const left = [...again.outbox.fetch(1, 0, 100).rows, ...again.outbox.fetch(2, 0, 100).rows]
      .map((r) => r.id)
      .sort((a, b) => a - b);
    expect(left).toEqual([...ids.filter((id) => !gone.includes(id)), ids[59]! + 1]);
    const runs = encodeWrite([], [5, 3, 4, 9, 1, 10, 10, 12]);
    expect([...new Float64Array(runs.buffer, rangesOffset(runs.rowsLength), runs.ranges * 2)]).toEqual([
      1, 1, 3, 5, 9, 10, 12, 12,
    ]);
    await again.outbox.close();
  });

  it("fetches at most the bytes asked for (one row however large), knowing the sizes before reading a row", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    const sizes = [100_000, 300_000, 50_000, 2_000_000, 10, 10];
    const ids: number[] = sizes.map((n, i) => outbox.append(1, `t/ü${i}`, Buffer.alloc(n, i), false, null)[0]);
    await outbox.durable();
    const topicBytes = Buffer.byteLength("t/ü0");
    const fetched = (after: number, limit: number, maxBytes?: number): unknown[] => {
      const { rows, more } = outbox.fetch(1, after, limit, maxBytes);
      return [rows.map((r) => [r.id, r.size]), more];
    };
    // 100 000 + 300 000 fit in 450 000, the next would not; the sizes are the rows' own
    expect(fetched(0, 10, 450_000)).toEqual([
      [
        [ids[0], 100_000 + topicBytes],
        [ids[1], 300_000 + topicBytes],
      ],
      true,
    ]);
    // one row larger than the bytes asked for comes alone
    expect(fetched(ids[2]!, 10, 1000)).toEqual([[[ids[3], 2_000_000 + topicBytes]], true]);
    // all that is left, within the bytes: nothing more on disk
    expect(fetched(ids[3]!, 10, 1000)).toEqual([
      [
        [ids[4], 10 + topicBytes],
        [ids[5], 10 + topicBytes],
      ],
      false,
    ]);
    // as many as the limit: there may be more
    expect(fetched(0, 2)[1]).toBe(true);
    expect(fetched(ids[5]!, 2)).toEqual([[], false]);
    await outbox.close();
  });

  it("fills the buffer the writer gave back: a smaller write after a larger one reads only its own rows and deletes", () => {
    const row = (id: number, topic: string, bytes: number, props: string | null): OutboxRow => [
      id,
      1,
      1_700_000_000_000 + id,
      topic,
      Buffer.alloc(bytes, id),
      0,
      topic.length + bytes,
      props,
    ];
    const large = [row(1, "a/ü", 3000, "{}"), row(2, "b", 2000, null), row(3, "c", 1000, null)];
    const first = encodeWrite(large, [9, 7, 8]);
    const small = [row(4, "d", 5, '{"x":1}')];
    const second = encodeWrite(small, [20, 22], first.buffer);
    expect(second.buffer).toBe(first.buffer); // the same memory, filled again
    expect(decodeRows(second.buffer, second.rowsLength)).toEqual(small);
    expect([...new Float64Array(second.buffer, rangesOffset(second.rowsLength), second.ranges * 2)]).toEqual([
      20, 20, 22, 22,
    ]);
    // rows that do not fit in the given-back buffer get one of their own, whole
    const huge = [row(5, "e", 200_000, null)];
    const third = encodeWrite(huge, [], second.buffer);
    expect(third.buffer).not.toBe(second.buffer);
    expect(decodeRows(third.buffer, third.rowsLength)).toEqual(huge);
  });

  it("writes every row and delete exactly through many writes of changing size (the buffer goes back and forth)", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    const kept: { id: number; payload: Buffer }[] = [];
    for (let round = 0; round < 30; round++) {
      // large and small writes in turn, each deleting a third of what is on disk (as acknowledgements do)
      for (const k of kept.splice(0, Math.floor(kept.length / 3))) outbox.removeOne(k.id);
      const n = round % 3 === 0 ? 200 : 1 + (round % 5);
      const bytes = round % 2 === 0 ? 700 : 3;
      for (let i = 0; i < n; i++) {
        const payload = Buffer.alloc(bytes, (round * 31 + i) % 251);
        kept.push({ id: outbox.append(1, `t/${round}/${i}`, payload, false, null)[0], payload });
      }
      await outbox.durable();
    }
    await outbox.close();
    const again = await Outbox.open(dir);
    const rows = again.outbox.fetch(1, 0, 10_000).rows;
    expect(rows.map((r) => r.id)).toEqual(kept.map((k) => k.id));
    expect(rows.every((r, i) => Buffer.compare(again.outbox.payload(r.id)!, kept[i]!.payload) === 0)).toBe(true);
    await again.outbox.close();
  });

  it("is indexed by uplink only while two uplinks' rows may be in it: made in the write that brings the second, left out at an open with one", async () => {
    const dir = tempDir();
    const file = join(dir, "uplink-outbox.db");
    const indexed = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db.query("SELECT name FROM sqlite_master WHERE name = 'messages_uplink'").get() !== null;
      } finally {
        db.close();
      }
    };
    // the plan a read of one uplink's rows takes, from the appliance's side of the file
    const plan = () => {
      const db = new Database(file, { readonly: true });
      try {
        const rows = db
          .query("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE uplink = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
          .all(1, 0, 10) as { detail: string }[];
        return rows.map((r) => r.detail).join("; ");
      } finally {
        db.close();
      }
    };
    const first = await Outbox.open(dir);
    for (let i = 0; i < 500; i++) first.outbox.append(1, "a", Buffer.from(String(i)), false, null);
    await first.outbox.durable();
    expect([indexed(), plan()]).toEqual([false, expect.stringContaining("INTEGER PRIMARY KEY")]);
    // a second uplink's first row: the index is there when the write that holds it is reported
    first.outbox.append(2, "b", Buffer.from("b0"), false, null);
    await first.outbox.durable();
    expect([indexed(), plan()]).toEqual([true, expect.stringContaining("messages_uplink")]);
    expect(first.outbox.fetch(2, 0, 10).rows.map((r) => r.topic)).toEqual(["b"]);
    await first.outbox.close();
    // both uplinks still have rows: kept at the next open
    const second = await Outbox.open(dir);
    expect(indexed()).toBe(true);
    const twos = second.outbox.fetch(2, 0, 10).rows.map((r) => r.id);
    second.outbox.remove(twos);
    await second.outbox.durable();
    second.outbox.append(1, "a", Buffer.from("one more"), false, null); // a write, to carry the delete
    await second.outbox.durable();
    await second.outbox.close();
    // one uplink's rows alone (the other drained): dropped at the open; its rows read as before
    const third = await Outbox.open(dir);
    expect([indexed(), [...third.stats.keys()]]).toEqual([false, [1]]);
    expect(third.outbox.fetch(1, 0, 1000).rows).toHaveLength(501);
    // an uplink removed that has no rows: the other's stay
    third.outbox.purge(2);
    third.outbox.append(1, "a", Buffer.from("after"), false, null);
    await third.outbox.durable();
    expect([indexed(), third.outbox.fetch(1, 0, 1000).rows.length]).toEqual([false, 502]);
    await third.outbox.close();
  });

  it("removes what it did not make (found from outside: a planted index under its name sorted a backlog on the event loop, a UNIQUE one refused every write); a table under an index's name is not an outbox", async () => {
    const dir = tempDir();
    const file = join(dir, "uplink-outbox.db");
    const first = await Outbox.open(dir);
    for (let i = 0; i < 5; i++) first.outbox.append(1 + (i % 2), `t/${i}`, Buffer.from(String(i)), false, null);
    await first.outbox.durable();
    await first.outbox.close();
    const tamper = (...sql: string[]) => {
      const db = new Database(file);
      try {
        for (const q of sql) db.run(q);
      } finally {
        db.close();
      }
    };
    tamper(
      "DROP INDEX messages_uplink",
      "CREATE INDEX messages_uplink ON messages (uplink, topic, payload)",
      "CREATE UNIQUE INDEX planted ON messages (topic)",
      "CREATE TRIGGER eat AFTER INSERT ON messages BEGIN DELETE FROM messages WHERE id = new.id; END",
      "CREATE VIEW peek AS SELECT payload FROM messages",
    );
    const second = await Outbox.open(dir);
    expect(second.removed.sort()).toEqual(["index messages_uplink", "index planted", "trigger eat", "view peek"]);
    const schema = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db.query("SELECT type, name, sql FROM sqlite_master WHERE type != 'table' ORDER BY name").all();
      } finally {
        db.close();
      }
    };
    expect(schema()).toEqual([
      { type: "index", name: "messages_retained", sql: expect.stringContaining("WHERE retain = 1") },
      { type: "index", name: "messages_uplink", sql: "CREATE INDEX messages_uplink ON messages (uplink, id)" },
    ]);
    second.outbox.append(1, "t/0", Buffer.from("again"), false, null); // a topic taken: the UNIQUE index is gone
    await second.outbox.durable();
    expect(second.outbox.fetch(1, 0, 10).rows.map((r) => r.topic)).toEqual(["t/0", "t/2", "t/4", "t/0"]);
    await second.outbox.close();
    // an object of another kind under one of its names: not an outbox (the appliance sets the file aside)
    tamper("DROP INDEX messages_uplink", "CREATE TABLE messages_uplink (x)");
    await expect(Outbox.open(dir)).rejects.toMatchObject({ code: "GATEHOUSE_NOT_AN_OUTBOX" });
  });

  it("a file whose tables are not as the outbox makes them, or that holds too much it does not make, is not an outbox (found from outside: names in another case, a CHECK constraint)", async () => {
    const { outboxSchema } = await import("../../src/connectors/uplink/outbox-protocol.ts");
    const made = (...sql: string[]) => {
      const dir = tempDir();
      const db = new Database(join(dir, "uplink-outbox.db"), { create: true });
      try {
        for (const q of sql) db.exec(q);
      } finally {
        db.close();
      }
      return dir;
    };
    const withCheck = outboxSchema.replace("props TEXT", "props TEXT CHECK (length(topic) < 3)");
    const generated = outboxSchema.replace("props TEXT", "props TEXT, twice AS (size * 2)");
    const unique = outboxSchema.replace("topic TEXT NOT NULL", "topic TEXT NOT NULL UNIQUE");
    for (const dir of [
      made(outboxSchema, "CREATE TABLE MESSAGES_UPLINK (x)"), // SQLite's names ignore case
      made(withCheck),
      made(generated),
      made(unique),
      made(outboxSchema.replace("status (", "Status (")),
      made(outboxSchema, ...Array.from({ length: 101 }, (_, i) => `CREATE VIEW v${i} AS SELECT 1`)),
    ])
      await expect(Outbox.open(dir)).rejects.toMatchObject({ code: "GATEHOUSE_NOT_AN_OUTBOX" });
    // SQLite's statistics (they choose query plans) and an index of its name in another case: removed
    const dir = made(
      outboxSchema.replace(
        "CREATE INDEX IF NOT EXISTS messages_retained",
        "CREATE INDEX IF NOT EXISTS MESSAGES_RETAINED",
      ),
      "ANALYZE",
      ...Array.from({ length: 50 }, (_, i) => `CREATE VIEW v${i} AS SELECT 1`),
    );
    const opened = await Outbox.open(dir);
    expect(opened.removed).toContain("index MESSAGES_RETAINED");
    expect(opened.removed).toContain("table sqlite_stat1");
    expect(opened.removed).toHaveLength(52);
    await opened.outbox.close();
  });

  it("a file holding ids the outbox never gives is not an outbox (found from outside: a row at 0 stranded what came after it, one near 2^63 failed every write)", async () => {
    for (const id of ["0", "-5", "9223372036854775807", "9007199254740993"]) {
      const dir = tempDir();
      const made = await Outbox.open(dir);
      made.outbox.append(1, "a", Buffer.from("x"), false, null);
      await made.outbox.durable();
      await made.outbox.close();
      const db = new Database(join(dir, "uplink-outbox.db"));
      db.run(
        `INSERT INTO messages (id, uplink, at, topic, payload, retain, size) VALUES (${id}, 1, 0, 'p', x'00', 0, 2)`,
      );
      db.close();
      await expect(Outbox.open(dir)).rejects.toMatchObject({ code: "GATEHOUSE_NOT_AN_OUTBOX" });
    }
  });

  it.skipIf(!Bun.which("sqlite3"))(
    "a file found damaged by a write is set aside as one found damaged by a read (found from outside: an index over another table's pages refused every write, and the file stayed)",
    async () => {
      const dir = tempDir();
      const made = await Outbox.open(dir);
      made.outbox.append(1, "a", Buffer.from("x"), true, null);
      await made.outbox.durable();
      await made.outbox.close();
      // what only SQLite's own shell lets one do: the retained index pointed at the owners table's pages
      const shell = Bun.spawnSync([
        "sqlite3",
        join(dir, "uplink-outbox.db"),
        "PRAGMA writable_schema=ON; UPDATE sqlite_master SET rootpage=(SELECT rootpage FROM sqlite_master WHERE name='owners') WHERE name='messages_retained';",
      ]);
      expect(shell.exitCode).toBe(0);
      const again = await Outbox.open(dir);
      const told: string[] = [];
      again.outbox.onUnreadable = (err) => told.push(err.message);
      again.outbox.append(1, "a", Buffer.from("y"), true, null);
      // its publisher is told no: the message was not stored
      const refusal = await again.outbox.durable().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(refusal?.name).toBe("BusNotStoredError");
      expect(told).toEqual([expect.stringContaining("malformed")]);
      expect(again.outbox.broken).toMatch(/set aside/);
      await again.outbox.close();
    },
  );

  it("keeps every field of a row as written: UTF-8 topics and properties, retain, time, size, several uplinks in one write", async () => {
    const dir = tempDir();
    const { outbox } = await Outbox.open(dir);
    const written = [
      outbox.append(
        1,
        "plant/ü/日本/😀",
        Buffer.from("a"),
        true,
        '{"contentType":"tëxt/ü","userProperties":{"k":"日"}}',
      ),
      outbox.append(2, "t", Buffer.alloc(0), false, null),
      outbox.append(1, "x".repeat(5000), Buffer.alloc(70_000, 7), false, "{}"),
    ];
    await outbox.durable();
    await outbox.close();
    const again = await Outbox.open(dir);
    const read = [...again.outbox.fetch(1, 0, 10).rows, ...again.outbox.fetch(2, 0, 10).rows].sort(
      (a, b) => a.id - b.id,
    );
    expect(read.map((r) => [r.id, r.at, r.topic, r.retain ? 1 : 0, r.size, r.props])).toEqual(
      written.map((w) => [w[0], w[2], w[3], w[5], w[6], w[7]]),
    );
    expect(read.map((r) => Buffer.compare(again.outbox.payload(r.id)!, written[read.indexOf(r)]![4]))).toEqual([
      0, 0, 0,
    ]);
    expect(again.stats.get(1)).toMatchObject({ count: 2 });
    await again.outbox.close();
  });

  it("a full disk stops the outbox with a clear error: what it cannot queue is refused to its publisher (MQTT 5 PUBACK 0x97, MQTT 3.1.1 no PUBACK, HTTP 503), never acknowledged and dropped; the broker and the admin API go on, and it queues again once there is room", async () => {
    // The data dir on a small disk of its own (the outbox is never reached through a link, so it shares the
    // admin database's disk): what fills it is the uplink's backlog.
    await withSmallDisk("gatehouse-full-", "12m", async (dir, held) => {
      const started = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
      const app = started.app;
      held.app = app;
      const { url, lines } = started;
      const token = app.core.admins.createApiToken("t").token;
      // an upstream that hangs up on every connection: the uplink has a connection error of its own
      let attempts = 0;
      const hangUp = createServer((socket) => {
        attempts++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => hangUp.listen(0, "127.0.0.1", resolve));
      const nobody = (hangUp.address() as AddressInfo).port;
      await fetch(`${url}/api/v1/uplinks`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "full", urls: [`mqtt://127.0.0.1:${nobody}`], forward: ["big/#"] }),
      });
      const { password } = await app.core.credentials.create({
        type: "mqtt",
        username: "plc-full",
        publishAcl: ["big/#", "other/#"],
      });
      const http = await app.core.credentials.create({
        type: "http",
        username: "http-full",
        publishAcl: ["big/#", "other/#"],
      });
      const port = app.address("mqtt")!.port;
      const plc = await connectMqtt(port, { username: "plc-full", password, clientId: "plc-full", protocolVersion: 5 });
      const reader = await connectMqtt(port, { username: "plc-full", password, clientId: "reader-full" });
      await reader.subscribeAsync("other/#", { qos: 1 });
      const payload = Buffer.alloc(16 * 1024, "x");
      // 16 KB messages until one is refused: more than the 12 MB disk holds
      let acknowledged = 0;
      let refusal: (Error & { code?: number }) | undefined;
      for (let i = 0; i < 2000 && !refusal; i++)
        await plc.publishAsync("big/x", payload, { qos: 1 }).then(
          () => acknowledged++,
          (err: Error & { code?: number }) => (refusal = err),
        );
      // MQTT 5: PUBACK 0x97 (quota exceeded), the device keeps its connection and sends the message again later
      expect(refusal?.code).toBe(0x97);
      expect(acknowledged).toBeGreaterThan(100);
      // Each way in below is tried until it is refused: the room moves a little as the outbox's log is cut
      // back after a checkpoint, and what is taken then is acknowledged and counted.
      // QoS 2: PUBREC 0x97
      let q2: (Error & { code?: number }) | undefined;
      for (let i = 0; i < 200 && !q2; i++)
        await plc.publishAsync("big/x", payload, { qos: 2 }).then(
          () => acknowledged++,
          (e: Error & { code?: number }) => (q2 = e),
        );
      expect(q2?.code).toBe(0x97);
      expect(plc.connected).toBe(true);
      const status = async () =>
        (await (await fetch(`${url}/api/v1/uplinks/full`, { headers: { authorization: `Bearer ${token}` } })).json())
          .status;
      await eventually(async () => expect((await status()).lastError).toMatch(/disk is (nearly )?full/), 10_000);
      // the outbox keeps a reserve for the rest of the appliance (found from outside: a backlog that filled the
      // disk to its last byte kept the appliance from starting again): 5 % of the disk, at least 1 MiB
      const left = statfsSync(dir);
      expect(left.bavail * left.bsize).toBeGreaterThan(768 * 1024);
      // and it stays the news through the connection's own errors (found from outside: an outage fills the
      // disk, and the status showed only the connection's error)
      const mark = attempts;
      await eventually(() => expect(attempts).toBeGreaterThan(mark + 1), 10_000);
      expect((await status()).lastError).toMatch(/disk is (nearly )?full/);
      // everything acknowledged is queued; what was not is refused, none dropped (found from outside: a full
      // disk acknowledged messages and counted them as dropped)
      let s = await status();
      expect([s.queued, s.dropped]).toEqual([acknowledged, 0]);
      expect(s.refused).toBeGreaterThanOrEqual(1);
      expect(lines.some((l) => l.includes("uplink outbox write failed") && /disk is (nearly )?full/.test(l))).toBe(
        true,
      );
      // HTTP: 503 not_stored, nothing acknowledged
      const basic = `Basic ${Buffer.from(`http-full:${http.password}`).toString("base64")}`;
      let posted: Response | undefined;
      for (let i = 0; i < 200; i++) {
        posted = await fetch(`${url}/api/v1/data/big/x`, {
          method: "POST",
          headers: { authorization: basic },
          body: payload,
        });
        if (posted.status !== 202) break;
        acknowledged++;
      }
      expect(posted!.status).toBe(503);
      expect(((await posted!.json()) as { error: string }).error).toBe("not_stored");
      // a batch: what no uplink takes is published, and the answer names those items
      let batch: Response | undefined;
      for (let i = 0; i < 200; i++) {
        batch = await fetch(`${url}/api/v1/data`, {
          method: "POST",
          headers: { authorization: basic, "content-type": "application/json" },
          body: JSON.stringify([
            { topic: "other/a", payload: "1" },
            { topic: "big/b", payload },
            { topic: "other/c", payload: "3" },
          ]),
        });
        if (batch.status !== 202) break;
        acknowledged++;
      }
      expect(batch!.status).toBe(503);
      expect(((await batch!.json()) as { message: string }).message).toContain(
        "items 1, 3 of the batch were published (the others were not)",
      );
      // MQTT 3.1.1 has no negative PUBACK: no PUBACK, the connection closes; the device sends it again later
      // (here: a device reconnecting until it was closed three times)
      let closings = 0;
      for (let i = 0; i < 300 && closings < 3; i++) {
        const old = await connectMqtt(port, { username: "plc-full", password, clientId: "plc-old" });
        const closed = new Promise<"closed">((resolve) => old.once("close", () => resolve("closed")));
        const answer = await Promise.race([
          old.publishAsync("big/x", payload, { qos: 1 }).then(() => "acknowledged" as const),
          closed,
        ]);
        if (answer === "acknowledged") acknowledged++;
        else closings++;
        old.end(true);
      }
      expect(closings).toBe(3);
      // the refusals are said in one line every 10 s, not one per connection (found from outside: ~53 a second
      // from 10 devices reconnecting)
      const said = lines.filter((l) => l.includes("mqtt publish not acknowledged")).length;
      expect(said).toBeGreaterThanOrEqual(1);
      expect(said).toBeLessThanOrEqual(2);
      // a QoS 0 message has nobody to tell: it counts as dropped (one that finds room is queued)
      let queued0 = 0;
      for (let i = 0; i < 200 && (await status()).dropped === 0; i++) {
        const before = (await status()).queued;
        await plc.publishAsync("big/x", payload, { qos: 0 });
        await eventually(async () => {
          const now = await status();
          expect(now.dropped + now.queued).toBe(before + 1);
        }, 10_000);
        if ((await status()).dropped === 0) queued0++;
      }
      s = await status();
      expect(s.dropped).toBe(1);
      expect(s.queued).toBe(acknowledged + queued0);
      // the broker goes on: a QoS 1 message is answered and delivered; the admin database is read as before
      const got = new Promise<string>((resolve) => reader.once("message", (_t, p) => resolve(p.toString())));
      await plc.publishAsync("other/x", "still here", { qos: 1 });
      expect(await got).toBe("still here");
      const listed = await fetch(`${url}/api/v1/integrations`, { headers: { authorization: `Bearer ${token}` } });
      expect(listed.status).toBe(200);
      // /readyz may say the data dir's disk is short of space; an uplink is listed, never a reason
      const ready = (await (await fetch(`${url}/readyz`)).json()) as { reasons: string[]; connectors: unknown };
      expect(ready.reasons.join(" ")).not.toMatch(/uplink|outbox/);
      expect(JSON.stringify(ready.connectors)).toContain("full");
      const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
      expect(metrics).toMatch(/gatehouse_uplink_refused_total\{uplink="full"\} [1-9]/);
      await plc.endAsync();
      await reader.endAsync();
      // a restart on that disk starts, with the backlog (the reserve is what it needs)
      await app.stop();
      held.app = undefined;
      const again = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
      held.app = again.app;
      const status2 = async () =>
        (
          await (
            await fetch(`${again.url}/api/v1/uplinks/full`, { headers: { authorization: `Bearer ${token}` } })
          ).json()
        ).status;
      await eventually(async () => expect((await status2()).queued).toBe(acknowledged + queued0), 10_000);
      // room again (the disk grown): the outbox takes new messages without a restart, and the refused one
      // sent again is acknowledged and queued
      expect(Bun.spawnSync(["mount", "-o", "remount,size=48m", dir]).exitCode).toBe(0);
      const plc2 = await connectMqtt(again.app.address("mqtt")!.port, {
        username: "plc-full",
        password,
        clientId: "plc-full",
        protocolVersion: 5,
      });
      await plc2.publishAsync("big/x", payload, { qos: 1 });
      await eventually(async () => expect((await status2()).queued).toBe(acknowledged + queued0 + 1), 10_000);
      expect((await status2()).lastError ?? "").not.toMatch(/outbox write/);
      await plc2.endAsync();
      hangUp.close();
    });
  }, 90_000);

  it("sets an unreadable outbox aside at start (not a database, or cut short), makes a new one and says so; the CLI still lists the uplinks", async () => {
    for (const damage of ["garbage", "cut short", "another shape"] as const) {
      const dir = tempDir();
      const start = () => testApp(["--opcua-port", "off"], {}, {}, dir);
      let { app, url } = await start();
      let token = app.core.admins.createApiToken("t").token;
      const api = async (path: string, body?: unknown) =>
        (
          await fetch(`${url}/api/v1/uplinks${path}`, {
            method: body ? "POST" : "GET",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: body ? JSON.stringify(body) : undefined,
          })
        ).json();
      // nothing listens upstream: what the device sends waits in the outbox
      await api("", { name: "held", urls: [`mqtt://127.0.0.1:${await freePort()}`], forward: ["t/#"] });
      const { password } = await app.core.credentials.create({ type: "mqtt", username: "plc", publishAcl: ["t/#"] });
      const publish = async (n: number) => {
        const plc = await connectMqtt(app.address("mqtt")!.port, { username: "plc", password, clientId: "plc" });
        for (let i = 0; i < n; i++) await plc.publishAsync(`t/${i}`, Buffer.alloc(1000, i), { qos: 1 });
        await plc.endAsync();
      };
      await publish(300);
      await eventually(async () => expect((await api("/held")).status.queued).toBe(300));
      await app.stop();
      const file = join(dir, "uplink-outbox.db");
      if (damage === "garbage") writeFileSync(file, Buffer.alloc(64 * 1024, 0x5a));
      else if (damage === "cut short") truncateSync(file, Math.floor(statSync(file).size / 2));
      else {
        // SQLite, but not an outbox: it stopped every uplink for good ("no such column"), acknowledged and lost
        for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
        const other = new Database(file);
        other.exec("CREATE TABLE messages (id INTEGER PRIMARY KEY, foo TEXT); CREATE TABLE owners (x);");
        other.close();
      }
      // the CLI lists the uplink and says what is wrong with the file (it failed with SQLite's bare error)
      const listed = cliStatus(dir);
      expect([listed.name, listed.lastError]).toEqual(["held", expect.stringMatching(/outbox cannot be read/)]);
      // started again: the file is set aside (kept), a new outbox queues again, and every place says so
      ({ app, url } = await start());
      token = app.core.admins.createApiToken("t2").token;
      const aside = readdirSync(dir).filter((f) => f.startsWith("uplink-outbox.db.unreadable-"));
      expect(aside.length).toBeGreaterThanOrEqual(1);
      expect((await api("/held")).status.lastError).toMatch(
        /outbox was unreadable .*set aside as uplink-outbox\.db\.unreadable-/,
      );
      expect(app.core.activity.list({ action: "uplink.outbox-set-aside" }).length).toBe(1);
      await publish(3);
      await eventually(async () => expect((await api("/held")).status.queued).toBe(3));
      await app.stop();
    }
  }, 60_000);

  it("an outbox damaged while the appliance runs breaks the uplinks, not the appliance; the next start makes a new one", async () => {
    // found from outside: the status's read of a file cut short underneath threw and stopped the appliance
    const dir = tempDir();
    const start = () => testApp(["--opcua-port", "off"], {}, {}, dir);
    let { app, url } = await start();
    let token = app.core.admins.createApiToken("t").token;
    const upstreamPort = await freePort(); // nothing listens until the file is damaged
    const held = async () =>
      (await (await fetch(`${url}/api/v1/uplinks/held`, { headers: { authorization: `Bearer ${token}` } })).json())
        .status;
    await fetch(`${url}/api/v1/uplinks`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "held", urls: [`mqtt://127.0.0.1:${upstreamPort}`], forward: ["t/#"] }),
    });
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "plc", publishAcl: ["t/#"] });
    const device = () => connectMqtt(app.address("mqtt")!.port, { username: "plc", password, clientId: "plc" });
    let plc = await device();
    for (let i = 0; i < 2000; i++) await plc.publishAsync(`t/${i}`, Buffer.alloc(1000, i), { qos: 1 });
    await plc.endAsync();
    await app.stop(); // its pages in the file itself (checkpointed), as after any restart
    ({ app, url } = await start());
    token = app.core.admins.createApiToken("t2").token;
    await eventually(async () => expect((await held()).queued).toBe(2000));
    const file = join(dir, "uplink-outbox.db");
    truncateSync(file, Math.floor(statSync(file).size / 2));
    // the upstream comes: the backlog is read, into the part cut off
    const upstream = createServer((socket) => {
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on("packet", (p) => {
        if (p.cmd === "connect")
          socket.write(mqttPacket.generate({ cmd: "connack", returnCode: 0, sessionPresent: false }));
        if (p.cmd === "publish" && p.qos === 1)
          socket.write(mqttPacket.generate({ cmd: "puback", messageId: p.messageId! }));
      });
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, "127.0.0.1", resolve));
    await eventually(async () => expect((await held()).lastError).toMatch(/outbox cannot be read/), 20_000);
    // what the set-aside file holds is not sent from here: not queued, counted as dropped (found from outside:
    // the page and /metrics said "queued 3000" for good)
    await eventually(async () => {
      const s = await held();
      expect([s.queued, s.queuedBytes, s.oldestQueuedAgeS, s.forwarded + s.dropped]).toEqual([0, 0, 0, 2000]);
    });
    // the appliance goes on: what the uplink would take is refused to its device, never acknowledged and
    // lost (MQTT 5: PUBACK 0x80, the connection stays); a QoS 0 message nobody waits for counts as dropped
    plc = await connectMqtt(app.address("mqtt")!.port, {
      username: "plc",
      password,
      clientId: "plc",
      protocolVersion: 5,
    });
    const before = await held();
    const refusal = await plc.publishAsync("t/after", "x", { qos: 1 }).then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(refusal?.code).toBe(0x80);
    await plc.publishAsync("t/after", "x", { qos: 0 });
    await eventually(async () => {
      const s = await held();
      expect([s.refused, s.dropped]).toEqual([before.refused + 1, before.dropped + 1]);
    });
    expect(plc.connected).toBe(true);
    await plc.endAsync();
    expect(readdirSync(dir).some((f) => f.startsWith("uplink-outbox.db.unreadable-"))).toBe(true);
    expect(app.core.activity.list({ action: "uplink.outbox-set-aside" }).length).toBe(1);
    // the CLI says it too (found from outside: the status it reads went with the file, and it showed a healthy
    // idle uplink, "queued 0", no error, while the API and /readyz said the outbox was set aside)
    const cli = cliStatus(dir);
    expect([cli.name, cli.queued, cli.lastError]).toEqual([
      "held",
      0,
      expect.stringMatching(
        /outbox cannot be read .* set aside as uplink-outbox\.db\.unreadable-\S+ while the appliance ran: nothing is queued until the appliance restarts/,
      ),
    ]);
    await app.stop();
    upstream.close();
    // the next start: a new, empty outbox that queues again (nothing listens upstream now)
    ({ app, url } = await start());
    token = app.core.admins.createApiToken("t3").token;
    plc = await device();
    await plc.publishAsync("t/new", "y", { qos: 1 });
    await eventually(async () => expect((await held()).queued).toBe(1));
    await plc.endAsync();
    // and the CLI no longer says the set-aside: it reads the new outbox
    await eventually(() => expect(cliStatus(dir).queued).toBe(1));
    expect(cliStatus(dir).lastError ?? "").not.toMatch(/set aside/);
    await app.stop();
  }, 90_000);

  it("the CLI says a set-aside until a new outbox is there: while the appliance that set it aside runs or none runs, never in another run", async () => {
    const dir = tempDir();
    const db = openDataDir(dir);
    const uplinks = [new UplinkStore(db, dir).create({ name: "held", urls: ["mqtt://127.0.0.1:1"], forward: ["t/#"] })];
    const lastError = (running = true) => readStatuses(dir, uplinks, running)[0]!.lastError ?? "";
    expect(lastError()).toBe("");
    noteSetAside(dir, "uplink-outbox.db.unreadable-x", "file is not a database"); // this process: it lives
    expect(lastError()).toMatch(
      /set aside as uplink-outbox\.db\.unreadable-x while the appliance ran: nothing is queued until the appliance restarts/,
    );
    // written by a process that is gone (stopped, killed): said while none runs, old news while another runs
    const gone = Bun.spawnSync(["sh", "-c", "echo $$"]).stdout.toString().trim();
    const note = join(dir, setAsideNote);
    writeFileSync(note, JSON.stringify({ pid: Number(gone), aside: "uplink-outbox.db.unreadable-a", error: "e" }));
    expect(lastError(false)).toMatch(
      /set aside as uplink-outbox\.db\.unreadable-a while the appliance ran: the next start makes a new one/,
    );
    expect(lastError()).toBe("");
    // a link planted at its name is not followed
    const elsewhere = join(tempDir(), "note");
    writeFileSync(elsewhere, JSON.stringify({ pid: process.pid, aside: "uplink-outbox.db.unreadable-a", error: "e" }));
    rmSync(note);
    symlinkSync(elsewhere, note);
    expect([lastError(), lastError(false)]).toEqual(["", ""]);
    // a new outbox made since (the next start): its own status is the news
    rmSync(note);
    noteSetAside(dir, "uplink-outbox.db.unreadable-x", "file is not a database");
    const made = await Outbox.open(dir);
    await made.outbox.close();
    expect([lastError(), lastError(false)]).toEqual(["", ""]);
    db.$client.close();
  });

  it("a note is believed only from the process that wrote it, about a set-aside file; its words and an upstream's never reach the terminal as controls", () => {
    const dir = tempDir();
    const db = openDataDir(dir);
    const uplinks = [new UplinkStore(db, dir).create({ name: "held", urls: ["mqtt://127.0.0.1:1"], forward: ["t/#"] })];
    const lastError = (running = true) => readStatuses(dir, uplinks, running)[0]!.lastError ?? "";
    const note = join(dir, setAsideNote);
    const aside = "uplink-outbox.db.unreadable-2026-12-06T20-00-00-000Z";
    // found from outside: a pid that another process has now (after a reboot, or reused) was believed
    const other = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(note, JSON.stringify({ pid: other.pid, started: "1", aside, error: "e" }));
      expect(lastError(false)).toMatch(/the next start makes a new one/);
      expect(lastError()).toBe("");
    } finally {
      other.kill();
    }
    // and any name as the set-aside file
    for (const name of ["../../etc/passwd", "x", `${aside}/..`])
      expect(
        (writeFileSync(note, JSON.stringify({ pid: process.pid, aside: name, error: "e" })), lastError(false)),
      ).toBe("");
    // the terminal shows controls as text: a screen clear, a window title, a line of its own
    noteSetAside(dir, aside, "\u001b[2J\u001b]0;owned\u0007\r\nup9\tconnected\u202e\u009b2J\u2028\u061c\ufeff\u007f");
    db.$client.close();
    const text = Bun.spawnSync(
      ["bun", join(import.meta.dir, "../../src/main.ts"), "uplinks", "status", "--data-dir", dir],
      { env: { ...process.env, GATEHOUSE_DATA_DIR: "" } },
    );
    const out = text.stdout.toString();
    expect([text.exitCode, out.split("\n").filter(Boolean).length]).toEqual([0, 1]);
    const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u2028\u202e\ufeff]/;
    expect(out).not.toMatch(raw);
    expect(out).toContain(
      "\\u001b[2J\\u001b]0;owned\\u0007\\u000d\\u000aup9\\u0009connected\\u202e\\u009b2J\\u2028\\u061c\\ufeff\\u007f",
    );
    // --json too (found from outside: JSON.stringify escapes C0 only), and it is the same value
    const json = Bun.spawnSync(
      ["bun", join(import.meta.dir, "../../src/main.ts"), "uplinks", "status", "--json", "--data-dir", dir],
      { env: { ...process.env, GATEHOUSE_DATA_DIR: "" } },
    ).stdout.toString();
    expect(json).not.toMatch(raw);
    expect(JSON.parse(json)[0].lastError).toContain("\u001b[2J\u001b]0;owned\u0007\r\nup9\tconnected\u202e\u009b2J");
  });

  it("says when the running appliance has not written its status for a while (a full disk): not a healthy idle uplink", async () => {
    const dir = tempDir();
    const db = openDataDir(dir);
    const uplinks = [new UplinkStore(db, dir).create({ name: "held", urls: ["mqtt://127.0.0.1:1"], forward: ["t/#"] })];
    const { outbox } = await Outbox.open(dir);
    outbox.setStatus(uplinks[0]!.id, JSON.stringify({ connected: true, url: "mqtt://127.0.0.1:1", lastError: null }));
    await outbox.close();
    const now = Date.now();
    expect(readStatuses(dir, uplinks, true, now)[0]).toMatchObject({ connected: true, lastError: null });
    // found from outside: on a full disk the CLI said "disconnected", no error, while the page said the outbox
    // could not be written
    expect(readStatuses(dir, uplinks, true, now + 60_000)[0]).toMatchObject({
      connected: false,
      lastError: expect.stringMatching(/the running appliance has not written its status since .* a full disk/),
    });
    // stopped: what the outbox holds, as before
    expect(readStatuses(dir, uplinks, false, now + 60_000)[0]!.lastError).toBeNull();
    db.$client.close();
  });

  it("never reaches the outbox or its key through a link planted in the data dir", async () => {
    const dir = tempDir();
    const elsewhere = tempDir();
    const victim = join(elsewhere, "victim");
    writeFileSync(victim, "not an outbox", { mode: 0o644 });
    symlinkSync(victim, join(dir, "uplink-outbox.db"));
    const { app, url } = await testApp(["--opcua-port", "off"], {}, {}, dir);
    try {
      const token = app.core.admins.createApiToken("t").token;
      const made = await fetch(`${url}/api/v1/uplinks`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "linked", urls: [`mqtt://127.0.0.1:${await freePort()}`], forward: ["x/#"] }),
      });
      expect(made.status).toBe(201);
      const status = async () =>
        (await (await fetch(`${url}/api/v1/uplinks/linked`, { headers: { authorization: `Bearer ${token}` } })).json())
          .status;
      await eventually(async () => expect((await status()).lastError).toMatch(/symlink/), 10_000);
      // what it would take is refused to its device (MQTT 5: PUBACK 0x80), never acknowledged and lost, and
      // counted (found from outside: the count stayed 0); a QoS 0 message nobody waits for counts as dropped
      const plc = await device(app, "plc-l", ["x/#"]);
      const codes: (number | undefined)[] = [];
      for (let i = 0; i < 4; i++)
        await plc.publishAsync("x/a", String(i), { qos: 1 }).then(
          () => codes.push(0),
          (e: Error & { code?: number }) => codes.push(e.code),
        );
      expect(codes).toEqual([0x80, 0x80, 0x80, 0x80]);
      await plc.publishAsync("x/a", "q0", { qos: 0 });
      await plc.endAsync();
      await eventually(async () => {
        const s = await status();
        expect([s.refused, s.dropped]).toEqual([4, 1]);
      });
      // over HTTP: 503, not 202
      const http = await app.core.credentials.create({ type: "http", username: "http-l", publishAcl: ["x/#"] });
      const posted = await fetch(`${url}/api/v1/data/x/a`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`http-l:${http.password}`).toString("base64")}` },
        body: "h",
      });
      expect(posted.status).toBe(503);
    } finally {
      await app.stop();
    }
    // the link's target was neither written nor narrowed
    expect(readFileSync(victim, "utf8")).toBe("not an outbox");
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    // the CLI refuses it too, and a linked key file
    const cli = (...args: string[]) =>
      Bun.spawnSync(["bun", join(import.meta.dir, "../../src/main.ts"), "uplinks", ...args, "--data-dir", dir], {
        env: { ...process.env, GATEHOUSE_DATA_DIR: "" },
      });
    const st = cli("status", "--json");
    expect(st.exitCode).toBe(2);
    expect(st.stderr.toString()).toContain("symlink");
    const key = join(elsewhere, "key");
    writeFileSync(key, Buffer.alloc(32, 1), { mode: 0o644 });
    symlinkSync(key, join(dir, "uplink-secrets.key"));
    const added = Bun.spawnSync(
      [
        "bun",
        join(import.meta.dir, "../../src/main.ts"),
        "uplinks",
        "add",
        "with-password",
        "--url",
        "mqtt://127.0.0.1:1883",
        "--forward",
        "#",
        "--username",
        "u",
        "--password-stdin",
        "--data-dir",
        dir,
      ],
      { stdin: Buffer.from("secret\n"), env: { ...process.env, GATEHOUSE_DATA_DIR: "" } },
    );
    expect(added.exitCode).not.toBe(0);
    expect(added.stderr.toString()).toContain("symlink");
    expect(statSync(key).mode & 0o777).toBe(0o644);
  }, 60_000);
});

describe("while the appliance starts", () => {
  it("a message an uplink will take, published before the uplinks started, is held and answered once it is in the outbox", async () => {
    const dir = tempDir();
    const db = openDataDir(dir);
    new UplinkStore(db, dir).create({
      name: "early",
      urls: [`mqtt://127.0.0.1:${await freePort()}`],
      forward: ["early/#"],
    });
    db.$client.close();
    const config = parseServeConfig(
      ["--data-dir", dir, "--bind", "127.0.0.1", "--http-port", "0", "--https-port", "off", "--mqtt-port", "0"].concat([
        "--mqtts-port",
        "off",
        "--opcua-port",
        "off",
      ]),
      {},
    );
    const app = createApp(config, memoryLog().log, { hashCost: testHashCost });
    // what the broker's authorizePublish asks before the connectors started (they start after the listeners)
    let answered = false;
    const held = app.core.bus.tap({ topic: "early/x", payload: Buffer.from("1"), retain: false, qos: 1 }, "mqtt");
    expect(held).toBeInstanceOf(Promise);
    void held!.then(() => (answered = true));
    expect(
      app.core.bus.tap({ topic: "other/x", payload: Buffer.from("1"), retain: false, qos: 1 }, "mqtt"),
    ).toBeUndefined();
    await Bun.sleep(50);
    expect(answered).toBe(false);
    await app.start();
    await held;
    const file = new Database(join(dir, "uplink-outbox.db"), { readonly: true });
    expect(file.query("SELECT topic FROM messages").all()).toEqual([{ topic: "early/x" }]);
    file.close();
    await app.stop();
    expect(existsSync(join(dir, "uplink-outbox.db"))).toBe(true);
  });
});

describe("while the appliance stops", () => {
  it("the listeners stop after the uplinks: what an uplink would take in between is never acknowledged (MQTT: no PUBACK; HTTP: 503), and what was acknowledged before is in the outbox", async () => {
    // found from outside: SIGTERM under load lost the last 202s and PUBACKs: the uplinks' durable tap was
    // removed as they stopped, and the broker and the HTTP API, still up, acknowledged what no outbox held
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off"], {}, {}, dir);
    const token = app.core.admins.createApiToken("t").token;
    const made = await fetch(`${url}/api/v1/uplinks`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "closing", urls: [`mqtt://127.0.0.1:${await freePort()}`], forward: ["s/#"] }),
    });
    expect(made.status).toBe(201);
    const http = await app.core.credentials.create({ type: "http", username: "http-s", publishAcl: ["s/#"] });
    const { password } = await app.core.credentials.create({
      type: "mqtt",
      username: "plc-s",
      publishAcl: ["s/#", "other/#"],
    });
    const port = app.address("mqtt")!.port;
    const v4 = await connectMqtt(port, { username: "plc-s", password, clientId: "plc-s4" });
    const v5 = await connectMqtt(port, { username: "plc-s", password, clientId: "plc-s5", protocolVersion: 5 });
    const post = (topic: string) =>
      fetch(`${url}/api/v1/data/${topic}?qos=1`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`http-s:${http.password}`).toString("base64")}` },
        body: "x",
      });
    try {
      expect((await post("s/before")).status).toBe(202);
      await v4.publishAsync("s/before4", "x", { qos: 1 });
      // the uplinks stop first, as at SIGTERM; the listeners are still up
      const uplink = app.connectors.find((c) => c.name === "uplink")!;
      await uplink.stop();
      const answer = await post("s/after");
      expect(answer.status).toBe(503);
      // MQTT (3.1.1 and 5): no PUBACK, no refusal either; the device sends it again to the next run
      let acked = 0;
      for (const c of [v4, v5])
        void c.publishAsync("s/after-mqtt", "x", { qos: 1 }).then(
          () => acked++,
          () => {},
        );
      await Bun.sleep(500);
      expect(acked).toBe(0);
      // a topic no uplink takes is acknowledged as before
      await v5.publishAsync("other/x", "x", { qos: 1 });
      // and every message acknowledged before is in the outbox
      const file = new Database(join(dir, "uplink-outbox.db"), { readonly: true });
      expect(
        (file.query("SELECT topic FROM messages ORDER BY id").all() as { topic: string }[]).map((r) => r.topic),
      ).toEqual(["s/before", "s/before4"]);
      file.close();
    } finally {
      v4.end(true);
      v5.end(true);
      await app.stop();
    }
  });
});

describe("an outbox moved away while the appliance runs", () => {
  it("is not written to: what an uplink would take is refused from then on, and said", async () => {
    // found from outside: after the files were moved, 100 more publishes got PUBACK 0 into the unlinked file,
    // and the restart's new outbox held none of them, with no word anywhere
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off"], {}, {}, dir);
    try {
      const token = app.core.admins.createApiToken("t").token;
      await fetch(`${url}/api/v1/uplinks`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "moved", urls: [`mqtt://127.0.0.1:${await freePort()}`], forward: ["m/#"] }),
      });
      const plc = await device(app, "plc-m", ["m/#"]);
      await plc.publishAsync("m/before", "x", { qos: 1 });
      const away = join(tempDir(), "moved");
      mkdirSync(away);
      for (const f of ["uplink-outbox.db", "uplink-outbox.db-wal", "uplink-outbox.db-shm"])
        if (existsSync(join(dir, f))) renameSync(join(dir, f), join(away, f));
      const codes: (number | undefined)[] = [];
      for (let i = 0; i < 3; i++)
        await plc.publishAsync("m/after", "x", { qos: 1 }).then(
          () => codes.push(0),
          (e: Error & { code?: number }) => codes.push(e.code),
        );
      expect(codes).toEqual([0x80, 0x80, 0x80]);
      const status = (
        await (await fetch(`${url}/api/v1/uplinks/moved`, { headers: { authorization: `Bearer ${token}` } })).json()
      ).status;
      expect(status.lastError).toMatch(/no longer at its path/);
      expect(status.refused).toBe(3);
      await plc.endAsync();
      // the moved file holds what was acknowledged before, and nothing after
      const file = new Database(join(away, "uplink-outbox.db"), { readonly: true });
      expect(file.query("SELECT topic FROM messages").all()).toEqual([{ topic: "m/before" }]);
      file.close();
    } finally {
      await app.stop();
    }
  });
});

describe("a message that expires while it waits", () => {
  it("is not sent, whether the upstream speaks MQTT 5 or 3.1.1; counted as dropped", async () => {
    // found from outside: an MQTT 5 message with an expiry interval of 1 s, queued 6 s, went up a 3.1.1 uplink
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
    const servers: ReturnType<typeof createServer>[] = [];
    try {
      const token = app.core.admins.createApiToken("t").token;
      const got = new Map<number, string[]>([
        [4, []],
        [5, []],
      ]);
      const ports = new Map<number, number>();
      for (const protocol of [4, 5] as const) {
        ports.set(protocol, await freePort());
        const made = await fetch(`${url}/api/v1/uplinks`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({
            name: `exp${protocol}`,
            urls: [`mqtt://127.0.0.1:${ports.get(protocol)}`],
            forward: ["e/#"],
            protocol,
          }),
        });
        expect(made.status).toBe(201);
      }
      const plc = await device(app, "plc-e", ["e/#"]);
      await plc.publishAsync("e/short", "x", { qos: 1, properties: { messageExpiryInterval: 1 } });
      await plc.publishAsync("e/long", "x", { qos: 1, properties: { messageExpiryInterval: 600 } });
      await plc.publishAsync("e/none", "x", { qos: 1 });
      await plc.endAsync();
      await Bun.sleep(2100);
      // the upstreams come
      for (const protocol of [4, 5] as const) {
        const server = createServer((socket) => {
          const parser = mqttPacket.parser({ protocolVersion: protocol });
          parser.on("packet", (p) => {
            if (p.cmd === "connect")
              socket.write(
                mqttPacket.generate({ cmd: "connack", returnCode: 0, reasonCode: 0, sessionPresent: false } as never, {
                  protocolVersion: protocol,
                }),
              );
            if (p.cmd === "publish") {
              got.get(protocol)!.push(p.topic);
              if (p.qos === 1)
                socket.write(
                  mqttPacket.generate({ cmd: "puback", messageId: p.messageId! }, { protocolVersion: protocol }),
                );
            }
          });
          socket.on("data", (d: Buffer) => parser.parse(d));
          socket.on("error", () => {});
        });
        servers.push(server);
        await new Promise<void>((resolve) => server.listen(ports.get(protocol), "127.0.0.1", resolve));
      }
      const status = async (name: string) =>
        (await (await fetch(`${url}/api/v1/uplinks/${name}`, { headers: { authorization: `Bearer ${token}` } })).json())
          .status;
      for (const protocol of [4, 5]) {
        await eventually(async () => expect((await status(`exp${protocol}`)).queued).toBe(0), 15_000);
        expect(got.get(protocol)!.filter((t) => t.startsWith("e/"))).toEqual(["e/long", "e/none"]);
        expect((await status(`exp${protocol}`)).dropped).toBe(1);
      }
    } finally {
      for (const s of servers) s.close();
      await app.stop();
    }
  }, 30_000);
});

describe("after an outage that took the outbox to its reserve", () => {
  it("the backlog sent, it takes messages again without a restart (its free pages are room)", async () => {
    // found from outside: after the upstream drained the queue, every new message was still refused with
    // 4-5 MB free: the log left at its largest and the file's free pages were counted as taken
    await withSmallDisk("gatehouse-reserve-", "12m", async (dir, held) => {
      const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
      held.app = app;
      const port = await freePort();
      const status = await uplinkApi(app, url).add({
        name: "reserve",
        urls: [`mqtt://127.0.0.1:${port}`],
        forward: ["r/#"],
      });
      const plc = await device(app, "plc-r", ["r/#"]);
      const payload = Buffer.alloc(16 * 1024, "r");
      let acknowledged = 0;
      let refused = false;
      for (let i = 0; i < 2000 && !refused; i++)
        await plc.publishAsync("r/x", payload, { qos: 1 }).then(
          () => acknowledged++,
          () => (refused = true),
        );
      expect(refused).toBe(true);
      // the upstream comes and takes the backlog
      let arrived = 0;
      held.upstream = await ackingUpstream(port, (topic) => {
        if (topic === "r/x") arrived++;
      });
      await eventually(async () => expect((await status()).queued).toBe(0), 20_000);
      expect(arrived).toBeGreaterThanOrEqual(acknowledged);
      // as many again, taken: the file's pages freed by the backlog hold them
      const codes: (number | undefined)[] = [];
      for (let i = 0; i < acknowledged; i++)
        await plc.publishAsync("r/x", payload, { qos: 1 }).then(
          () => codes.push(0),
          (e: Error & { code?: number }) => codes.push(e.code),
        );
      expect(codes.filter((c) => c !== 0)).toEqual([]);
      await plc.endAsync();
    });
  }, 90_000);
});

describe("eight uplinks filling a small disk", () => {
  it("keep the reserve through the checkpoint at stop: the next start starts", async () => {
    // found from outside: small messages to eight uplinks took an 8 MiB disk past the reserve (the estimate
    // counted their bytes, not the pages each commit writes), the checkpoint at SIGTERM filled it, and the
    // next start failed ("disk I/O error")
    await withSmallDisk("gatehouse-eight-", "8m", async (dir, held) => {
      const { app, url } = await testApp(["--opcua-port", "off"], {}, {}, dir);
      held.app = app;
      const api = uplinkApi(app, url);
      const nobody = await freePort();
      for (let i = 0; i < 8; i++)
        await api.add({ name: `u${i}`, urls: [`mqtt://127.0.0.1:${nobody}`], forward: ["m/#"] });
      const plc = await device(app, "plc-8", ["m/#"]);
      const payload = Buffer.alloc(200, "m");
      let refused = 0;
      for (let round = 0; round < 400 && refused === 0; round++)
        refused += await refusals(plc, 100, (i) => `m/${i}`, payload);
      expect(refused).toBeGreaterThan(0);
      await plc.endAsync();
      await app.stop();
      held.app = undefined;
      const left = statfsSync(dir);
      expect(left.bavail * left.bsize).toBeGreaterThan(256 * 1024);
      const again = await testApp(["--opcua-port", "off"], {}, {}, dir);
      held.app = again.app;
      const listed = await fetch(`${again.url}/api/v1/uplinks`, { headers: { authorization: `Bearer ${api.token}` } });
      expect(listed.status).toBe(200);
    });
  }, 120_000);
});

describe("an upstream's Maximum Packet Size (MQTT 5)", () => {
  it("a message larger than it is not sent (dropped, said); the queue behind it goes on", async () => {
    // found from outside: one message past the upstream's limit had it close the connection at every try,
    // 463 resends in 40 s, and the messages behind it never arrived
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
    const upstream = await limitedUpstream(5, () => 1000, 1000);
    try {
      const status = await uplinkApi(app, url).add({
        name: "small",
        urls: [`mqtt://127.0.0.1:${upstream.port}`],
        forward: ["p/#"],
        protocol: 5,
      });
      await eventually(async () => expect((await status()).connected).toBe(true), 10_000);
      const plc = await device(app, "plc-p", ["p/#"], 4);
      await plc.publishAsync("p/1", "small", { qos: 1 });
      await plc.publishAsync("p/big", Buffer.alloc(2000, 1), { qos: 1 });
      await plc.publishAsync("p/2", "small", { qos: 1 });
      await plc.endAsync();
      await eventually(async () => expect((await status()).queued).toBe(0), 10_000);
      expect(upstream.got.filter((t) => t.startsWith("p/"))).toEqual(["p/1", "p/2"]);
      const s = await status();
      expect([s.dropped, s.connected]).toEqual([1, true]);
      expect(s.lastError).toMatch(/could not send p\/big: .*more than the upstream's Maximum Packet Size \(1000\)/);
      expect(upstream.state.connections).toBe(1);
    } finally {
      upstream.server.close();
      await app.stop();
    }
  });
});

describe("an MQTT 3.1.1 upstream that closes the connection at a message too large for it", () => {
  it("says which message holds the queue, and forwards it and the rest once the upstream takes it", async () => {
    // found from outside: MQTT 3.1.1 cannot say its largest packet; one message past it had the upstream
    // close the connection at every try, the queue behind it never moved, and the status said only that the
    // connection closed
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
    let limit = 1000;
    const upstream = await limitedUpstream(4, () => limit);
    try {
      const status = await uplinkApi(app, url).add({
        name: "old",
        urls: [`mqtt://127.0.0.1:${upstream.port}`],
        forward: ["p/#"],
        protocol: 4,
      });
      await eventually(async () => expect((await status()).connected).toBe(true), 10_000);
      const plc = await device(app, "plc-o", ["p/#"], 4);
      await plc.publishAsync("p/1", "small", { qos: 1 });
      await plc.publishAsync("p/big", Buffer.alloc(2000, 1), { qos: 1 });
      await plc.publishAsync("p/2", "small", { qos: 1 });
      // a PUBLISH of 2012 bytes: fixed header 1, remaining length 2, topic 2 + 5, packet identifier 2, payload 2000
      const note =
        /closed the connection \d+ times in a row before acknowledging anything; each time the oldest queued message, p\/big \(a PUBLISH of 2012 bytes\), went first/;
      await eventually(async () => expect((await status()).lastError).toMatch(note), 15_000);
      const held = await status();
      expect([held.queued, held.dropped]).toEqual([2, 0]);
      expect(upstream.got.filter((t) => t.startsWith("p/"))).toEqual(["p/1"]);
      // pointed at another upstream that is down: what happens there is the news, not the old note (found
      // from outside: the note stayed on the page, the API and the CLI, and the refusal reached only the log)
      const api = {
        authorization: `Bearer ${app.core.admins.createApiToken("t2").token}`,
        "content-type": "application/json",
      };
      const patch = (urls: string[]) =>
        fetch(`${url}/api/v1/uplinks/old`, { method: "PATCH", headers: api, body: JSON.stringify({ urls }) });
      const dead = createServer();
      await new Promise<void>((resolve) => dead.listen(0, "127.0.0.1", resolve));
      const deadPort = (dead.address() as AddressInfo).port;
      await new Promise<void>((resolve) => dead.close(() => resolve()));
      expect((await patch([`mqtt://127.0.0.1:${deadPort}`])).status).toBe(200);
      await eventually(async () => {
        const e = (await status()).lastError ?? "";
        expect(e).toContain(String(deadPort));
        expect(e).not.toMatch(/p\/big/);
      }, 10_000);
      // back, and the upstream takes it now: it goes, then what waited behind it, and nothing says it
      limit = 1_000_000;
      expect((await patch([`mqtt://127.0.0.1:${upstream.port}`])).status).toBe(200);
      await eventually(async () => expect((await status()).queued).toBe(0), 15_000);
      const first = upstream.got.filter((t, i, all) => t.startsWith("p/") && all.indexOf(t) === i);
      expect(first).toEqual(["p/1", "p/big", "p/2"]);
      await eventually(async () => expect((await status()).lastError ?? "").not.toMatch(/p\/big/), 10_000);
      await plc.endAsync();
    } finally {
      upstream.server.close();
      await app.stop();
    }
  });
});

describe("the note of a message that holds the queue, once that message is gone", () => {
  it("goes with it: an expired message no longer held anything", async () => {
    // found from outside: the held message expired and was dropped, the queue was empty, and the note still
    // said "it and everything behind it wait" (and to remove the uplink)
    const dir = tempDir();
    const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
    const upstream = await limitedUpstream(4, () => 100);
    try {
      const status = await uplinkApi(app, url).add({
        name: "exp",
        urls: [`mqtt://127.0.0.1:${upstream.port}`],
        forward: ["p/#"],
        protocol: 4,
      });
      await eventually(async () => expect((await status()).connected).toBe(true), 10_000);
      const plc = await device(app, "plc-e", ["p/#"]);
      await plc.publishAsync("p/exp", Buffer.alloc(200, 1), { qos: 1, properties: { messageExpiryInterval: 5 } });
      await plc.endAsync();
      await eventually(async () => expect((await status()).lastError).toMatch(/oldest queued message, p\/exp/), 5_000);
      await eventually(async () => {
        const s = await status();
        expect([s.queued, s.dropped]).toEqual([0, 1]);
        expect(s.lastError ?? "").not.toMatch(/p\/exp/);
      }, 15_000);
    } finally {
      upstream.server.close();
      await app.stop();
    }
  });
});

describe("steady traffic on a small disk, the upstream up", () => {
  it("is never refused: the outbox's log is checkpointed within the room it has", async () => {
    // found from outside: on an 8 MiB disk, 50 msg/s of 3 KB with a healthy upstream were refused for good
    // after ~2.4 MB: the log counted as taken grew toward SQLite's 4 MiB checkpoint, which refused writes
    // never reached
    await withSmallDisk("gatehouse-steady-", "8m", async (dir, held) => {
      const upstream = await ackingUpstream();
      held.upstream = upstream;
      const { app, url } = await testApp(["--opcua-port", "off"], {}, {}, dir);
      held.app = app;
      const status = await uplinkApi(app, url).add({
        name: "steady",
        urls: [`mqtt://127.0.0.1:${(upstream.address() as AddressInfo).port}`],
        forward: ["s/#"],
      });
      await eventually(async () => expect((await status()).connected).toBe(true), 10_000);
      const plc = await device(app, "plc-s", ["s/#"]);
      // 12 MB through an 8 MiB disk, 20 at a time
      const payload = Buffer.alloc(3000, "s");
      let refused = 0;
      for (let round = 0; round < 200; round++) refused += await refusals(plc, 20, () => "s/x", payload);
      expect(refused).toBe(0);
      await plc.endAsync();
    });
  }, 120_000);
});

describe("eight uplinks draining a backlog on a small disk", () => {
  it("keep the disk from filling, and take messages again once the backlog is sent", async () => {
    // found from outside: while eight queues drained, the outbox's log grew to 7.7 MB (SQLite's checkpoints
    // never let it start over with the uplinks reading all along), the 16 MiB disk went to 0 bytes free, and
    // every message was refused with empty queues until a restart
    await withSmallDisk("gatehouse-drain8-", "16m", async (dir, held) => {
      const { app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"], {}, {}, dir);
      held.app = app;
      const api = uplinkApi(app, url);
      const port = await freePort();
      for (let i = 0; i < 8; i++)
        await api.add({ name: `d${i}`, urls: [`mqtt://127.0.0.1:${port}`], forward: ["d/#"], remotePrefix: `r${i}/` });
      const plc = await device(app, "plc-d", ["d/#"]);
      const payload = Buffer.alloc(200, "d");
      const burst = (n: number) => refusals(plc, n, (i) => `d/${i}`, payload);
      let refused = 0;
      for (let round = 0; round < 300 && refused === 0; round++) refused += await burst(100);
      expect(refused).toBeGreaterThan(0);
      // the upstream comes: eight queues drain; the disk is watched all along
      let leastFree = Number.POSITIVE_INFINITY;
      const watch = setInterval(() => {
        const s = statfsSync(dir);
        leastFree = Math.min(leastFree, s.bavail * s.bsize);
      }, 20);
      held.upstream = await ackingUpstream(port);
      await eventually(async () => expect(await api.queued()).toBe(0), 60_000);
      clearInterval(watch);
      expect(leastFree).toBeGreaterThan(256 * 1024);
      // and messages are taken again, without a restart
      await eventually(async () => expect(await burst(50)).toBe(0), 10_000);
      await plc.endAsync();
    });
  }, 120_000);
});

describe("a QoS 0 flood faster than the outbox writes", () => {
  it("is dropped and counted past the bound, a waiting publisher is told no, and the uplink takes messages again after", async () => {
    // found from outside: QoS 0 messages have no PUBACK to hold their device back; a flood of 1 KB ones
    // (~52 000 a second against ~35 000 written) waited in memory for the writer, 159 MiB to 2.2 GiB in 22 s
    const seen: string[] = [];
    const upstream = await ackingUpstream(0, (t) => seen.push(t));
    const { app, url } = await testApp(["--opcua-port", "off"]);
    try {
      const status = await uplinkApi(app, url).add({
        name: "flood",
        urls: [`mqtt://127.0.0.1:${(upstream.address() as AddressInfo).port}`],
        forward: ["f/#"],
      });
      await eventually(async () => expect((await status()).connected).toBe(true), 10_000);
      const payload = Buffer.alloc(100, 7);
      // one turn of the event loop: nothing is written in between (as a socket read of many packets)
      for (let i = 0; i < 60_000; i++)
        app.core.bus.tap({ topic: "f/q0", payload, retain: false, qos: 0 }, "mqtt", false);
      const waiting = app.core.bus.tap({ topic: "f/q1", payload, retain: false, qos: 1 }, "mqtt", true);
      expect(waiting).toBeDefined();
      expect(
        await waiting!.then(
          () => "taken",
          (e: Error) => e.message,
        ),
      ).toMatch(/writer is behind/);
      const s = await status();
      expect(s.dropped).toBe(10_000); // the 50 000 the bound holds are queued, the rest dropped and counted
      expect(s.lastError).toMatch(/writer is behind/);
      await eventually(async () => expect((await status()).forwarded).toBe(50_000), 60_000);
      // caught up: taken again, and the note goes with the next write of this uplink's rows
      await app.core.bus.publish({ topic: "f/after", payload, retain: false, qos: 1 }, "mqtt");
      await eventually(async () => {
        const after = await status();
        expect([after.forwarded, after.dropped, after.lastError]).toEqual([50_001, 10_000, null]);
      }, 20_000);
      expect(seen.at(-1)).toBe("f/after");
    } finally {
      upstream.close();
      await app.stop();
    }
  }, 120_000);
});
