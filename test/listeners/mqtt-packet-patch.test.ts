import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

/**
 * Two patches (package.json `patchedDependencies`, applied by `bun install`), both on the path every MQTT
 * packet takes through mqtt-packet's parser. patches/mqtt-packet@9.0.2.patch (package.json `patchedDependencies`, applied by `bun install`): the
 * parser and writer of every MQTT packet (aedes' and mqtt.js') called `debug(...)` some ten times a packet,
 * and each call made an array of its arguments even with debugging off: about 1 KB of garbage per PUBLISH
 * parsed, half of what the parser allocates. Now they call nothing unless DEBUG names them when the process
 * starts. patches/bl@6.1.6.patch: the parser's buffer list read one byte, two or four (header, length,
 * packet identifier) by slicing them out first (a Buffer, a copy and an offset array per read); now it
 * reads them in place when they are there, and anything else goes the old way. Together: the parser makes
 * about a third of the garbage it did per PUBLISH (2.1 KB -> 0.7 KB, JSC's GC log).
 */
const root = join(import.meta.dir, "../..");

function parseIn(env: Record<string, string>) {
  const script = `
    const mqtt = require("mqtt-packet");
    const bytes = mqtt.generate({ cmd: "publish", topic: "line/1", payload: Buffer.from("42"), qos: 1, messageId: 7 });
    const out = [];
    const p = mqtt.parser({ protocolVersion: 4 });
    p.on("packet", (x) => out.push(x.topic + "=" + x.payload + "#" + x.messageId));
    p.parse(bytes);
    const sink = new (require("node:stream").Writable)({ write(c, e, cb) { out.push(c.length); cb(); } });
    mqtt.writeToStream({ cmd: "puback", messageId: 7 }, sink);
    setTimeout(() => console.log(JSON.stringify(out)), 10);
  `;
  const p = Bun.spawnSync([process.execPath, "-e", script], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  return { stdout: p.stdout.toString().trim(), stderr: p.stderr.toString(), code: p.exitCode };
}

describe("mqtt-packet as installed (the debug patch)", () => {
  it("is applied: the parser and the writer keep no debug call on the packet path unless DEBUG names them", () => {
    for (const file of ["parser.js", "writeToStream.js"]) {
      const src = readFileSync(join(root, "node_modules/mqtt-packet", file), "utf8");
      expect(src).toContain("const debug = debugLog.enabled ? debugLog : function () {}");
    }
  });

  it("reads a packet that came in many small chunks from one buffer, and reads it exactly", () => {
    // before: every read walked the chunk list from its start (reads x chunks): a 1 MB CONNECT of tiny user
    // properties sent 100 bytes at a time held the event loop ~10 s before any login (now ~0.1 s, measured)
    const src = readFileSync(join(root, "node_modules/mqtt-packet/parser.js"), "utf8");
    expect(src).toContain("if (bufs && bufs.length > 8) this._list._bufs = [Buffer.concat(bufs)]");
    const mqtt = createRequire(join(root, "package.json"))("mqtt-packet");
    const userProperties = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, String(i)]));
    const payload = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 255));
    const bytes = Buffer.concat([
      mqtt.generate(
        { cmd: "connect", protocolVersion: 5, clientId: "c", keepalive: 60, properties: { userProperties } },
        { protocolVersion: 5 },
      ),
      mqtt.generate({ cmd: "publish", topic: "t/x", payload, qos: 1, messageId: 9 }, { protocolVersion: 5 }),
      mqtt.generate({ cmd: "pingreq" }, { protocolVersion: 5 }),
    ]);
    const parser = mqtt.parser({ protocolVersion: 5 });
    const got: Record<string, any>[] = [];
    parser.on("packet", (p: Record<string, any>) => got.push(p));
    for (let at = 0; at < bytes.length; at += 100) parser.parse(bytes.subarray(at, at + 100));
    expect(got.map((p) => p.cmd)).toEqual(["connect", "publish", "pingreq"]);
    expect(got[0]!.properties.userProperties).toEqual(userProperties);
    expect(Buffer.compare(got[1]!.payload, payload)).toBe(0);
    expect(got[1]!.messageId).toBe(9);
  });

  it("parses and writes as before, silent without DEBUG; DEBUG=mqtt-packet:* still traces both", () => {
    const quiet = parseIn({});
    expect(quiet.code).toBe(0);
    // a PUBACK is written in pieces (fixed header, length, identifier), 4 bytes in all
    const got = JSON.parse(quiet.stdout) as (string | number)[];
    expect(got[0]).toBe("line/1=42#7");
    expect((got.slice(1) as number[]).reduce((a, b) => a + b, 0)).toBe(4);
    expect(quiet.stderr).toBe("");

    const traced = parseIn({ DEBUG: "mqtt-packet:*" });
    expect(traced.code).toBe(0);
    expect(JSON.parse(traced.stdout)).toEqual(got);
    expect(traced.stderr).toContain("mqtt-packet:parser");
    expect(traced.stderr).toContain("mqtt-packet:writeToStream");
  });
});

describe("bl as installed (the read patch)", () => {
  const BufferListStream = createRequire(join(root, "node_modules/mqtt-packet/parser.js"))("bl");
  const sizes = { readUInt8: 1, readUInt16BE: 2, readUInt32BE: 4 } as const;

  it("is applied where mqtt-packet takes it from", () => {
    expect(String(BufferListStream.prototype.readUInt16BE)).not.toContain("this.slice");
  });

  it("reads what the slice read, at every offset (in range or not) and however the bytes were cut into chunks", () => {
    const data = Buffer.from(Array.from({ length: 17 }, (_, i) => (i * 37 + 200) & 255));
    let compared = 0;
    for (let a = 0; a <= data.length; a++)
      for (let b = a; b <= data.length; b++) {
        const list = BufferListStream();
        for (const part of [data.subarray(0, a), data.subarray(a, b), data.subarray(b)]) list.append(part);
        list.consume(1); // as the parser does after the fixed header: the first chunk no longer starts at 0
        for (const offset of [-5, -1, ...Array.from({ length: data.length + 3 }, (_, i) => i), 1.5, Number.NaN])
          for (const [method, size] of Object.entries(sizes)) {
            const outcome = (read: () => number) => {
              try {
                return read();
              } catch (err) {
                return (err as Error).name;
              }
            };
            const patched = outcome(() => list[method](offset));
            const sliced = outcome(() => list.slice(offset, offset + size)[method](0));
            if (patched !== sliced) throw new Error(`${method}(${offset}) cut at ${a},${b}: ${patched} != ${sliced}`);
            compared++;
          }
      }
    expect(compared).toBeGreaterThan(10_000);
  });
});
