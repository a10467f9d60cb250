import { describe, expect, it } from "bun:test";
import { createServer, connect as tcpConnect } from "node:net";
import mqttPacket from "mqtt-packet";
import { Boundaries, PublishBatch, pubacks, tapPubacks } from "../../src/connectors/uplink/wire.ts";

// The uplink writes its PUBLISHes and reads its PUBACKs itself (src/connectors/uplink/wire.ts); these are
// checked against mqtt-packet, the encoder and parser mqtt.js and the brokers' tests use.

const generate = (p: object, protocolVersion: 4 | 5) =>
  mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion });

function parseAll(bytes: Buffer, protocolVersion: 4 | 5): mqttPacket.Packet[] {
  const parser = mqttPacket.parser({ protocolVersion });
  const out: mqttPacket.Packet[] = [];
  const errors: Error[] = [];
  parser.on("packet", (p) => out.push(p));
  parser.on("error", (e) => errors.push(e));
  parser.parse(bytes);
  expect(errors).toEqual([]);
  return out;
}

describe("the uplink's PUBLISH encoder", () => {
  const topics = ["a", "plant/line-1/temp", "Ünïcödé/温度/🌡"];

  it("writes exactly the bytes mqtt-packet writes, for MQTT 3.1.1 and 5, QoS 0 and 1, retain and DUP", () => {
    // remaining lengths on both sides of every step of their encoding (1 to 4 bytes)
    for (const protocol of [4, 5] as const)
      for (const topic of topics)
        for (const [qos, retain, dup] of [
          [0, false, false],
          [1, false, false],
          [1, true, true],
          [0, true, false],
        ] as const)
          for (const rest of [2 + 4 + 122, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
            const head = 2 + Buffer.byteLength(topic) + (qos ? 2 : 0) + (protocol === 5 ? 1 : 0);
            const size = rest - head;
            if (size < 0) continue;
            const payload = Buffer.alloc(size, 0x5a);
            const id = (size % 65_535) + 1;
            const batch = new PublishBatch(protocol);
            batch.add({ topic, payload, qos, retain, dup, id });
            const ours = batch.take()!;
            const theirs = generate(
              { cmd: "publish", topic, payload, qos, retain, dup, messageId: qos ? id : undefined },
              protocol,
            );
            expect(ours.equals(theirs)).toBe(true);
          }
  });

  it("encodes MQTT 5 properties as mqtt-packet does, and several PUBLISHes back to back across buffer growth", () => {
    const batch = new PublishBatch(5);
    const want: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const properties =
        i % 3 === 0
          ? {
              contentType: "application/json",
              userProperties: { line: `${i}`, cell: ["a", "b"] },
              correlationData: Buffer.from([i & 255, 1, 2]),
              messageExpiryInterval: 60 + i,
              payloadFormatIndicator: true,
            }
          : undefined;
      const m = { topic: `t/${i}`, payload: Buffer.alloc(i % 500, i & 255), qos: 1 as const, retain: i % 7 === 0 };
      batch.add({ ...m, dup: false, id: i + 1, properties });
      want.push(generate({ cmd: "publish", ...m, dup: false, messageId: i + 1, properties }, 5));
      // taken now and then, as the pump does: what was taken stays as it was
      if (i % 97 === 0) expect(batch.take()!.equals(Buffer.concat(want.splice(0)))).toBe(true);
    }
    const rest = batch.take()!;
    expect(rest.equals(Buffer.concat(want))).toBe(true);
    expect(batch.take()).toBeUndefined();
    const parsed = parseAll(rest, 5) as mqttPacket.IPublishPacket[];
    expect(parsed.at(-1)!.topic).toBe("t/2999");
  });

  it("refuses properties mqtt-packet cannot encode, adding nothing", () => {
    const batch = new PublishBatch(5);
    batch.add({ topic: "ok", payload: Buffer.from("1"), qos: 1, retain: false, dup: false, id: 1 });
    expect(() =>
      batch.add({
        topic: "bad",
        payload: Buffer.from("2"),
        qos: 1,
        retain: false,
        dup: false,
        id: 2,
        properties: { messageExpiryInterval: "soon" },
      }),
    ).toThrow();
    const out = parseAll(batch.take()!, 5) as mqttPacket.IPublishPacket[];
    expect(out.map((p) => p.topic)).toEqual(["ok"]);
  });
});

describe("the uplink's PUBACK reader", () => {
  const acks = (chunk: Buffer, protocol: 4 | 5) => {
    const out: number[] = [];
    return pubacks(chunk, protocol, out) ? out : false;
  };

  it("takes a chunk of nothing but whole PUBACKs without properties; anything else is left to mqtt.js", () => {
    const v4 = Buffer.concat([1, 2, 65_535, 256].map((id) => generate({ cmd: "puback", messageId: id }, 4)));
    expect(acks(v4, 4)).toEqual([1, 0, 2, 0, 65_535, 0, 256, 0]);
    const v5 = Buffer.concat([
      generate({ cmd: "puback", messageId: 7, reasonCode: 0 }, 5),
      generate({ cmd: "puback", messageId: 8, reasonCode: 0x10 }, 5),
      generate({ cmd: "puback", messageId: 9, reasonCode: 0x87 }, 5),
      Buffer.from([0x40, 4, 0, 10, 0x97, 0]), // reason code and an empty property length
    ]);
    expect(acks(v5, 5)).toEqual([7, 0, 8, 0x10, 9, 0x87, 10, 0x97]);
    // MQTT 3.1.1 has no reason code: a longer PUBACK is not taken
    expect(acks(Buffer.from([0x40, 3, 0, 1, 0]), 4)).toBe(false);
    const withReason = generate(
      { cmd: "puback", messageId: 3, reasonCode: 0x80, properties: { reasonString: "no" } },
      5,
    );
    for (const chunk of [
      withReason, // properties: mqtt.js reads them
      Buffer.concat([v4, generate({ cmd: "pingresp" }, 4)]),
      Buffer.concat([generate({ cmd: "suback", messageId: 1, granted: [1] }, 4), v4]),
      v4.subarray(0, v4.length - 1), // a PUBACK cut short
      v4.subarray(1), // not starting at a packet
      Buffer.from([0x42, 2, 0, 1]), // reserved flags set: malformed
      generate({ cmd: "pubrec", messageId: 1 }, 4),
    ])
      expect(acks(chunk, 5)).toBe(false);
  });

  it("follows packet boundaries through chunks cut anywhere", () => {
    const packets = [
      generate({ cmd: "puback", messageId: 1 }, 4),
      generate({ cmd: "publish", topic: "down/x", payload: Buffer.alloc(200, 1), qos: 1, messageId: 5 }, 4),
      generate({ cmd: "pingresp" }, 4),
      generate({ cmd: "publish", topic: "down/y", payload: Buffer.alloc(20_000, 2), qos: 0 }, 4),
    ];
    const all = Buffer.concat(packets);
    const ends = new Set(packets.map((_, i) => Buffer.concat(packets.slice(0, i + 1)).length));
    for (let cut = 1; cut < all.length; cut += cut < 400 ? 1 : 997) {
      const b = new Boundaries();
      b.pass(all.subarray(0, cut));
      expect(b.aligned).toBe(ends.has(cut));
      b.pass(all.subarray(cut));
      expect(b.aligned).toBe(true);
      // the largest packet, counted whole (what --uplink-max-packet bounds)
      expect(b.largest).toBe(Math.max(...packets.map((p) => p.length)));
    }
    // one byte at a time
    const b = new Boundaries();
    for (let i = 0; i < all.length; i++) {
      b.pass(all.subarray(i, i + 1));
      expect(b.aligned).toBe(ends.has(i + 1));
    }
    // a remaining length longer than four bytes is malformed: never aligned again (mqtt.js closes)
    const bad = new Boundaries();
    bad.pass(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    bad.pass(generate({ cmd: "puback", messageId: 1 }, 4));
    expect(bad.aligned).toBe(false);
  });

  it("taps a socket piped to its reader: PUBACK-only chunks are taken when the reader is idle, the rest go on in order", async () => {
    const { Writable } = await import("node:stream");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const accepted = new Promise<import("node:net").Socket>((resolve) => server.once("connection", resolve));
    const socket = tcpConnect((server.address() as { port: number }).port, "127.0.0.1");
    const remote = await accepted;
    const reader: Buffer[] = [];
    let release: (() => void) | undefined;
    const sink = new Writable({
      write(chunk: Buffer, _e, done) {
        reader.push(chunk);
        // the reader holds its first chunk a while, as mqtt.js does while it handles the packets
        if (reader.length === 1) release = done;
        else done();
      },
    });
    socket.pipe(sink);
    const taken: number[] = [];
    let want = true;
    const tooLarge: number[] = [];
    const take = (acks: number[]) => {
      if (!want) return false;
      taken.push(...acks.filter((_, i) => i % 2 === 0));
      return true;
    };
    expect(tapPubacks(socket, 4, 1000, take, (length) => tooLarge.push(length))).toBe(true);
    const puback = (id: number) => generate({ cmd: "puback", messageId: id }, 4);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
    // a SUBACK: the reader's; while it holds it, PUBACKs go to it too (in order)
    remote.write(generate({ cmd: "suback", messageId: 1, granted: [1] }, 4));
    await settle();
    remote.write(puback(1));
    await settle();
    expect(taken).toEqual([]);
    release!();
    await settle();
    remote.write(Buffer.concat([puback(2), puback(3)]));
    await settle();
    expect(taken).toEqual([2, 3]);
    // a PUBLISH whose last four bytes look like a PUBACK, cut there: they are the PUBLISH's, not taken
    const payload = Buffer.concat([Buffer.alloc(6), puback(4)]);
    const pub = generate({ cmd: "publish", topic: "x", payload, qos: 0 }, 4);
    remote.write(pub.subarray(0, pub.length - 4));
    await settle();
    remote.write(pub.subarray(pub.length - 4));
    await settle();
    remote.write(puback(5));
    await settle();
    // not the uplink's: the reader's
    want = false;
    remote.write(puback(6));
    await settle();
    expect(taken).toEqual([2, 3, 5]);
    const seen = parseAll(Buffer.concat(reader.slice(1)), 4);
    expect(seen.map((p) => `${p.cmd}${"messageId" in p && p.messageId ? p.messageId : ""}`)).toEqual([
      "puback1",
      "publish",
      "puback6",
    ]);
    expect((seen[1] as mqttPacket.IPublishPacket).payload).toEqual(payload);
    // a packet longer than the limit: its header alone stops it (and everything after), nothing reaches the reader
    expect(tooLarge).toEqual([]);
    const before = reader.length;
    const big = generate({ cmd: "publish", topic: "x", payload: Buffer.alloc(2000), qos: 0 }, 4);
    remote.write(big.subarray(0, 5));
    await settle();
    remote.write(big.subarray(5));
    remote.write(puback(7));
    await settle();
    // its size is the whole packet's: type, two bytes of length, topic length and topic, payload
    expect([tooLarge, reader.length - before]).toEqual([[1 + 2 + 3 + 2000], 0]);
    socket.destroy();
    remote.destroy();
    server.close();
  });
});
