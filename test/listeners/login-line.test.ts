import { afterAll, describe, expect, it } from "bun:test";
import { MessageSecurityMode, OPCUAClient, SecurityPolicy, UserTokenType } from "node-opcua-client";
import type { App } from "../../src/app.ts";
import type { FairScheduler } from "../../src/core/throttle.ts";
import { cleanupTempDirs, slowHash, testApp } from "../helpers/app.ts";
import { connectMqtt, rawMqtt, type RawMqtt } from "../helpers/mqtt.ts";
import { connectOpcua } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Strangers who speak before login (findings F1/F2): each sends a whole login with a real name and a
 * wrong password, and waits while its password is checked. The password-check line is bounded (8 here
 * instead of 1 024) and clean attempts go first, so with the line full of strangers' guesses a real
 * device still gets in on its first attempt, newcomers that rank no better are told "busy" in each
 * protocol's words, and a guess whose client has gone is never checked.
 *
 * Everything is real (sockets, clients, argon2id hashes at 64 MiB), and so that what is in the line
 * can be looked at without a race against the clock, the line's two check slots are taken by checks
 * that end when the test says (`hold`): a controlled load, like a CPU busy with two slow hashes.
 */
afterAll(() => cleanupTempDirs());

const deviceCost = { memoryCost: 65_536, timeCost: 3 };
const names = ["n0", "n1", "n2", "n3"];
const line = 8;

/** lineApp: the appliance with a line of 8; the strangers' names and the devices exist. */
async function lineApp(extraArgs: string[] = []) {
  // hashCost = the stored hashes' cost: a right password is not rehashed (a rehash would drop its cache entry)
  const { app, url } = await testApp(extraArgs, {}, { maxQueuedLogins: line, hashCost: deviceCost });
  const hash = await slowHash("the device password");
  app.core.credentials.adoptMany([
    ...names.map((username) => ({ type: "mqtt" as const, username, passwordHash: hash })),
    { type: "mqtt", username: "cached-device", passwordHash: hash },
    { type: "mqtt", username: "fresh-device", passwordHash: hash },
    { type: "http", username: "http-device", passwordHash: hash },
    { type: "opcua", username: "opcua-device", passwordHash: hash },
  ]);
  return { app, url };
}

/**
 * hold: both check slots taken, each until its `release`. Taken while the line is idle, so they start
 * at once; the line and everything in front of it stay the real ones.
 */
async function hold(app: App): Promise<(() => void)[]> {
  await eventually(() => app.core.credentials.hashLine.queued === 0 && app.core.credentials.hashLine.running === 0);
  const scheduler = app.core.credentials.hashLine as unknown as FairScheduler;
  return [0, 1].map(() => {
    let release!: () => void;
    void scheduler.run("held", true, () => new Promise<void>((r) => (release = r)));
    return release;
  });
}

/** Stranger: one socket that sent a whole CONNECT with a wrong password; `answer` is its CONNACK code (undefined: closed without one). */
interface Stranger {
  raw: RawMqtt;
  answer: Promise<number | undefined>;
  answered: boolean;
}

let guesses = 0;
async function stranger(app: App, localAddress: string, username: string): Promise<Stranger> {
  const raw = await rawMqtt(app.address("mqtt")!.port, "127.0.0.1", 4, localAddress);
  const guess = `guess-${guesses++}`;
  raw.send({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    clientId: guess,
    username,
    password: Buffer.from(guess),
    keepalive: 60,
  });
  const s: Stranger = {
    raw,
    answered: false,
    answer: raw.next().then((p) => {
      s.answered = true;
      return p?.cmd === "connack" ? (p.returnCode as number) : undefined;
    }),
  };
  return s;
}

/** entered: logins that have entered the line so far (waiting now or started); a refused one never enters */
const entered = (app: App) => app.core.credentials.hashLine.queued + app.core.credentials.hashLine.stats.started;

/**
 * strangers: from each address one guess is checked (it fails: the address is unclean from now on);
 * then, with both check slots held, `waiting` more guesses, taking turns over names and addresses:
 * the first 8 wait in the line, the rest are refused.
 */
async function strangers(app: App, addresses: string[], waiting: number) {
  const sent: Stranger[] = [];
  for (const a of addresses) sent.push(await stranger(app, a, names[0]!));
  expect(await Promise.all(sent.map((s) => s.answer))).toEqual(addresses.map(() => 4));
  expect(addresses.every((a) => app.core.credentials.suspect(a, "any name"))).toBe(true);
  const releases = await hold(app);
  const before = entered(app);
  const more: Stranger[] = [];
  for (let i = 0; i < waiting; i++)
    more.push(await stranger(app, addresses[i % addresses.length]!, names[i % names.length]!));
  sent.push(...more);
  // each has entered the line or been refused
  await eventually(() => expect(entered(app) - before + more.filter((s) => s.answered).length).toBe(waiting));
  return {
    sent,
    more,
    releases,
    /** makeRoom: the newest guess still waiting goes away (it leaves the line unchecked) */
    async makeRoom() {
      const abandoned = app.core.credentials.stats.abandoned;
      [...sent]
        .reverse()
        .find((s) => !s.raw.isClosed && !s.answered)!
        .raw.destroy();
      await eventually(() => expect(app.core.credentials.stats.abandoned).toBe(abandoned + 1));
    },
    leave() {
      for (const s of sent) s.raw.destroy();
      for (const r of releases) r?.();
    },
  };
}

describe("logins waiting for their password check", () => {
  it("MQTT: with the line full of strangers' guesses, a device with a cached and one with an uncached credential get CONNACK 0 on their first attempt; a newcomer that ranks no better gets CONNACK 3 (MQTT 5: 0x89); the strangers' queued checks never run once they close", async () => {
    const { app } = await lineApp(["--opcua-port", "off"]);
    const port = app.address("mqtt")!.port;
    const device = (username: string, localAddress: string) =>
      connectMqtt(port, { username, password: "the device password", localAddress, connectTimeout: 30_000 });
    await (await device("cached-device", "127.0.0.5")).endAsync(); // logged in once before the strangers came
    const them = await strangers(app, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], line + 4);
    try {
      expect(app.core.credentials.hashLine.queued).toBe(line);
      // past the bound, a guess from a failed address ranks no better than those waiting: CONNACK 3, unchecked
      expect(await Promise.all(them.more.slice(line).map((s) => s.answer))).toEqual([3, 3, 3, 3]);
      expect(app.core.credentials.stats.busy).toBe(4);
      // the sockets that spoke and wait are counted in the pool, bounded by the line
      await eventually(() => expect(app.pool.spokeCount).toBe(line));

      const v311 = await stranger(app, "127.0.0.3", "n1");
      them.sent.push(v311);
      expect(await v311.answer).toBe(3); // server unavailable
      const v5 = await connectMqtt(port, {
        username: "n2",
        password: "a v5 guess",
        protocolVersion: 5,
        localAddress: "127.0.0.2",
      }).then(
        () => 0,
        (err: { code?: number }) => err.code,
      );
      expect(v5).toBe(0x89); // Server busy

      // the cached device costs no check: in while nothing in the line moves
      const cached = await device("cached-device", "127.0.0.5");
      // the other is clean: it takes a guess's place (that guess is refused) and is checked next
      const checks = app.core.credentials.stats.hashVerifies;
      const fresh = device("fresh-device", "127.0.0.6");
      await eventually(() => expect(app.core.credentials.stats.busy).toBe(4 + 2 + 1));
      expect(app.core.credentials.hashLine.queued).toBe(line);
      const verdicts: string[] = [];
      const off = [
        app.core.events.on("login.succeeded", (e) => verdicts.push(e.integration.username)),
        app.core.events.on("login.failed", (e) => e.reason === "wrong-password" && verdicts.push(e.username)),
      ];
      them.releases[0]!(); // one slot frees
      await (await fresh).endAsync();
      for (const o of off) o();
      expect(verdicts[0]).toBe("fresh-device"); // checked next, before any waiting guess
      expect(app.core.credentials.stats.hashVerifies).toBeGreaterThan(checks);
      expect(app.core.credentials.hashLine.queued).toBeGreaterThan(0); // the strangers still wait
      await cached.endAsync();

      // the strangers go away: what still waits leaves the line without a check
      const checksAtClose = app.core.credentials.stats.hashVerifies;
      const runningAtClose = app.core.credentials.hashLine.running;
      for (const s of them.sent) s.raw.destroy();
      await eventually(() => expect(app.core.credentials.hashLine.queued).toBe(0));
      expect(app.core.credentials.stats.abandoned).toBeGreaterThanOrEqual(line - 2);
      them.releases[1]!();
      await eventually(() => expect(app.core.credentials.hashLine.running).toBe(0), 10_000);
      expect(app.core.credentials.stats.hashVerifies - checksAtClose).toBeLessThanOrEqual(runningAtClose);
      await eventually(() => expect(app.pool.size).toBe(0));
    } finally {
      them.leave();
      await app.stop();
    }
  }, 60_000);

  it("the accept pool full of sockets whose CONNECTs wait for their checks: a newcomer on any port evicts one of them (sockets that spoke hold at most half of the pool), its check leaves the line unrun", async () => {
    const { app, url } = await lineApp(["--max-pending", `${line}`, "--opcua-port", "off"]);
    const port = app.address("mqtt")!.port;
    const device = (username: string, localAddress: string) =>
      connectMqtt(port, { username, password: "the device password", localAddress, connectTimeout: 30_000 });
    await (await device("cached-device", "127.0.0.5")).endAsync();
    await eventually(() => expect(app.pool.size).toBe(0));
    const releases = await hold(app);
    // 8 strangers from 8 new addresses, one whole CONNECT each (nothing tells them from devices yet)
    const sent: Stranger[] = [];
    try {
      for (let i = 0; i < line; i++) sent.push(await stranger(app, `127.0.3.${i + 1}`, names[i % names.length]!));
      await eventually(() => expect(app.core.credentials.hashLine.queued).toBe(line));
      expect(app.pool.spokeCount).toBe(line);
      expect(app.pool.size).toBe(line); // full
      // /healthz over a new connection is answered, and the device with a cached credential gets in
      const abandoned = app.core.credentials.stats.abandoned;
      const health = await fetch(`${url}/healthz`, { headers: { connection: "close" } });
      expect(health.status).toBe(200);
      const cached = await device("cached-device", "127.0.0.5");
      await cached.endAsync();
      // the first made room by closing a stranger's socket that spoke (the pool had room for the
      // second); that check left the line unrun
      expect(app.pool.closed("evicted-spoke")).toBe(1);
      await eventually(() => expect(sent.filter((s) => s.raw.isClosed).length).toBe(1));
      await eventually(() => expect(app.core.credentials.stats.abandoned).toBe(abandoned + 1));
      expect(app.core.credentials.hashLine.queued).toBe(line - 1);
    } finally {
      for (const s of sent) s.raw.destroy();
      for (const r of releases) r?.();
      await app.stop();
    }
  }, 60_000);

  it("HTTP, forward auth and OPC UA: a login that ranks no better than a full line is told busy (503 with Retry-After; 403 with Retry-After; BadServerTooBusy); one whose client leaves is dropped unchecked", async () => {
    const { app, url } = await lineApp(["--forward-auth-proxy", "generic"]);
    const opcuaPort = app.address("opcua")!.port;
    // the strangers guess from 127.0.0.1 too, where fetch and the OPC UA client connect from
    const them = await strangers(app, ["127.0.0.1", "127.0.0.7"], line);
    const wrong = { authorization: `Basic ${Buffer.from("http-device:a guess").toString("base64")}` };
    try {
      expect(app.core.credentials.hashLine.queued).toBe(line);
      const data = await fetch(`${url}/api/v1/data/plant/x`, { headers: wrong });
      expect(data.status).toBe(503);
      expect(data.headers.get("retry-after")).toBe("10");
      expect(((await data.json()) as { error: string }).error).toBe("unavailable");
      // nginx auth_request turns a 5xx into a 500: forward auth says 403, with Retry-After
      const check = await fetch(`${url}/auth/http`, {
        headers: { ...wrong, "x-gatehouse-uri": "/dashboard/x", "x-gatehouse-method": "GET" },
      });
      expect(check.status).toBe(403);
      expect(check.headers.get("retry-after")).toBe("10");
      const refused = await connectOpcua(opcuaPort, { userName: "opcua-device", password: "a guess" }).then(
        async (c) => (await c.close(), "connected"),
        (err: Error) => err.message,
      );
      expect(refused).toContain("BadServerTooBusy");
      expect(app.core.credentials.stats.busy).toBe(3);

      // a request that waits in the line and is abandoned by its client leaves it unchecked
      await them.makeRoom();
      const abandonedBefore = app.core.credentials.stats.abandoned;
      let before = entered(app);
      const client = new AbortController();
      const poll = fetch(`${url}/api/v1/data/plant/x`, { headers: wrong, signal: client.signal }).catch(
        () => "aborted",
      );
      await eventually(() => expect(entered(app)).toBe(before + 1)); // it waits in the line
      client.abort();
      expect(await poll).toBe("aborted");
      await eventually(() => expect(app.core.credentials.stats.abandoned).toBe(abandonedBefore + 1));
      expect(app.core.loginLog.recent(5).some((e) => e.username === "http-device" && e.reason === "abandoned")).toBe(
        true,
      );

      // an OPC UA client that gives up while its activation waits (its secure channel closes): unchecked too
      before = entered(app);
      const opcua = OPCUAClient.create({
        endpointMustExist: false,
        securityMode: MessageSecurityMode.None,
        securityPolicy: SecurityPolicy.None,
        connectionStrategy: { maxRetry: 0 },
      });
      await opcua.connect(`opc.tcp://127.0.0.1:${opcuaPort}`);
      const session = opcua
        .createSession({ type: UserTokenType.UserName, userName: "opcua-device", password: "another guess" })
        .then(
          () => "activated",
          () => "gave up",
        );
      await eventually(() => expect(entered(app)).toBe(before + 1), 15_000);
      await opcua.disconnect();
      expect(await session).toBe("gave up");
      await eventually(() => expect(app.core.credentials.stats.abandoned).toBe(abandonedBefore + 2));
      expect(app.core.loginLog.recent(5).some((e) => e.username === "opcua-device" && e.reason === "abandoned")).toBe(
        true,
      );
      expect(app.core.credentials.stats.hashVerifies).toBe(2); // the two first guesses; nothing since
    } finally {
      them.leave();
      await app.stop();
    }
  }, 60_000);
});
