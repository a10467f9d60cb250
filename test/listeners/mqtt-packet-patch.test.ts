import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

/**
 * patches/mqtt-packet@9.0.2.patch (package.json `patchedDependencies`, applied by `bun install`): the
 * parser every device byte goes through (aedes') read each field of a packet by walking its list of
 * received chunks from the start, so a packet that came in many small chunks cost reads x chunks. A
 * packet in more than 8 chunks is now joined into one buffer before it is read.
 */
const root = join(import.meta.dir, "../..");

describe("mqtt-packet as installed (the chunk patch)", () => {
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
});
