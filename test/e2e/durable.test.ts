import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { createCore } from "../../src/core/index.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { acceptsTable, requestTypeOf } from "../../src/listeners/index.ts";
import { cleanupTempDirs, tempDir, testHashCost } from "../helpers/app.ts";
import { buildBinary, runBinary } from "../helpers/binary.ts";
import { connectMqtt, connectWithInbox } from "../helpers/mqtt.ts";

let binary: string;
beforeAll(async () => {
  binary = await buildBinary();
}, 120_000);
afterAll(cleanupTempDirs);

const args = (dir: string) => [
  "serve",
  "--data-dir",
  join(dir, "data"),
  "--bind",
  "127.0.0.1",
  "--http-port",
  "0",
  "--https-port",
  "off",
  "--mqtt-port",
  "0",
  "--mqtts-port",
  "off",
  "--opcua-port",
  "off",
];

describe("the compiled binary keeps what it acknowledged (its broker store's writer is a worker inside it)", () => {
  it("a retained and a queued QoS 1 message, PUBACKed, survive SIGKILL; broker.db is 0600", async () => {
    const dir = tempDir("gatehouse-e2e-durable-");
    const db = openDataDir(join(dir, "data"));
    const core = createCore(db, silentLogger, { hashCost: testHashCost, accepts: acceptsTable(), requestTypeOf });
    const pub = await core.credentials.create({ type: "mqtt", username: "e2e-pub" });
    const sub = await core.credentials.create({ type: "mqtt", username: "e2e-sub" });
    db.$client.close();

    const first = await runBinary(binary, dir, args(dir));
    const s = await connectMqtt(first.ports.mqtt!, {
      username: "e2e-sub",
      password: sub.password,
      clientId: "e2e-s",
      clean: false,
    });
    await s.subscribeAsync("line/#", { qos: 1 });
    await s.endAsync();
    const p = await connectMqtt(first.ports.mqtt!, { username: "e2e-pub", password: pub.password });
    await p.publishAsync("line/state", "running", { qos: 1, retain: true });
    await p.publishAsync("line/count", "42", { qos: 1 });
    first.proc.kill("SIGKILL");
    await first.proc.exited;
    p.end(true);

    const second = await runBinary(binary, dir, args(dir));
    const back = await connectWithInbox(second.ports.mqtt!, {
      username: "e2e-sub",
      password: sub.password,
      clientId: "e2e-s",
      clean: false,
    });
    expect(await back.next()).toEqual({ topic: "line/state", payload: "running" });
    expect(await back.next()).toEqual({ topic: "line/count", payload: "42" });
    await back.client.endAsync();
    expect(await second.stop()).toBe(0);
    expect(statSync(join(dir, "data", "broker.db")).mode & 0o777).toBe(0o600);
  }, 60_000);
});
