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
