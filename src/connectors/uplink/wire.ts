import mqttPacket from "mqtt-packet";

/** Outgoing: one PUBLISH for `PublishBatch.add`. */
export interface Outgoing {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  dup: boolean;
  /** the packet identifier (QoS 1) */
  id: number;
  /** MQTT 5 properties, if any */
  properties?: Record<string, unknown>;
}

/** PacketTooLarge: a PUBLISH larger than the upstream takes (its MQTT 5 Maximum Packet Size). */
export class PacketTooLarge extends Error {
  override name = "PacketTooLarge";
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`it is ${size} bytes as a packet, more than the upstream's Maximum Packet Size (${limit})`);
  }
}

/**
 * PublishBatch: the uplink's PUBLISHes encoded one after another into one buffer, written to the socket
 * as one chunk per pump. mqtt.js' publish deep-copies each packet with its payload for its outgoing store
 * and writes every field as a chunk of its own (six per PUBLISH); the uplink keeps its own unacknowledged
 * messages, so it writes the bytes itself. A PUBLISH with MQTT 5 properties is encoded by mqtt-packet
 * (the encoder mqtt.js uses); one without, here. `take` hands out what was added since the last take;
 * later PUBLISHes go after it in the same buffer, so one allocation serves many pumps.
 */
export class PublishBatch {
  #buf = Buffer.allocUnsafe(0);
  #start = 0;
  #at = 0;

  /**
   * `maxPacket`: the upstream's Maximum Packet Size (MQTT 5 CONNACK): [MQTT-3.2.2-15] a client does not
   * send a larger packet (found from outside: one message past it had the upstream close the connection at
   * every try, and the queue behind it never moved)
   */
  constructor(
    private readonly protocol: 4 | 5,
    private readonly maxPacket = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * add: one PUBLISH; returns its size in bytes. Throws if mqtt-packet cannot encode its properties, or
   * PacketTooLarge past the upstream's Maximum Packet Size (nothing is added then).
   */
  add(m: Outgoing): number {
    if (m.properties && this.protocol === 5) {
      const bytes = mqttPacket.generate(
        {
          cmd: "publish",
          topic: m.topic,
          payload: m.payload,
          qos: m.qos,
          retain: m.retain,
          dup: m.dup,
          messageId: m.id,
          properties: m.properties,
        } as mqttPacket.IPublishPacket,
        { protocolVersion: 5 },
      );
      if (bytes.length > this.maxPacket) throw new PacketTooLarge(bytes.length, this.maxPacket);
      bytes.copy(this.#room(bytes.length), this.#at);
      this.#at += bytes.length;
      return bytes.length;
    }
    const topicBytes = Buffer.byteLength(m.topic);
    // MQTT §3.3: topic (length-prefixed), packet identifier (QoS > 0), MQTT 5: property length 0, payload
    const rest = 2 + topicBytes + (m.qos ? 2 : 0) + (this.protocol === 5 ? 1 : 0) + m.payload.length;
    const size = 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
    if (size > this.maxPacket) throw new PacketTooLarge(size, this.maxPacket);
    const buf = this.#room(size);
    let at = this.#at;
    buf[at++] = 0x30 | (m.dup ? 8 : 0) | (m.qos << 1) | (m.retain ? 1 : 0);
    let n = rest;
    do {
      const low = n % 128;
      n = Math.floor(n / 128);
      buf[at++] = n > 0 ? low | 128 : low;
    } while (n > 0);
    buf.writeUInt16BE(topicBytes, at);
    at += 2;
    at += buf.write(m.topic, at, topicBytes, "utf8");
    if (m.qos) {
      buf.writeUInt16BE(m.id, at);
      at += 2;
    }
    if (this.protocol === 5) buf[at++] = 0;
    at += m.payload.copy(buf, at);
    // writes past a buffer's end are dropped silently: a miscount must not send a truncated packet
    if (at !== this.#at + size) throw new Error(`PUBLISH encoded as ${at - this.#at} bytes, ${size} counted`);
    this.#at = at;
    return size;
  }

  /** take: the PUBLISHes added since the last take, as one chunk (undefined: none). */
  take(): Buffer | undefined {
    if (this.#at === this.#start) return undefined;
    const chunk = this.#buf.subarray(this.#start, this.#at);
    this.#start = this.#at;
    return chunk;
  }

  /** room: a buffer with `size` bytes free at `#at` (what was added and not taken moves along). */
  #room(size: number): Buffer {
    if (this.#at + size <= this.#buf.length) return this.#buf;
    const pending = this.#at - this.#start;
    // room to grow into (doubling, so a pump of many messages copies each a few times at most), but not
    // twice a message of many megabytes
    const need = pending + size;
    const next = Buffer.allocUnsafe(Math.max(64 * 1024, need + Math.min(need, 1024 * 1024)));
    this.#buf.copy(next, 0, this.#start, this.#at);
    this.#buf = next;
    this.#start = 0;
    this.#at = pending;
    return next;
  }
}

/**
 * pubacks: the packet identifiers and reason codes (pairs, into `out`) of a chunk that holds nothing but
 * whole PUBACKs without properties (MQTT 3.1.1: remaining length 2; MQTT 5: 2, 3 with a reason code, or
 * 4 with an empty property length); false for anything else.
 */
export function pubacks(chunk: Uint8Array, protocol: 4 | 5, out: number[]): boolean {
  out.length = 0;
  let i = 0;
  while (i < chunk.length) {
    if (chunk[i] !== 0x40 || i + 4 > chunk.length) return false;
    const length = chunk[i + 1]!;
    if (length !== 2 && (protocol !== 5 || length > 4 || (length === 4 && chunk[i + 5] !== 0))) return false;
    if (i + 2 + length > chunk.length) return false;
    out.push((chunk[i + 2]! << 8) | chunk[i + 3]!, length > 2 ? chunk[i + 4]! : 0);
    i += 2 + length;
  }
  return true;
}

/** Boundaries: follows MQTT packet boundaries through the chunks of a stream (what mqtt.js was given). */
export class Boundaries {
  /** body bytes of the current packet still to come */
  #skip = 0;
  /** the fixed header read so far, when a chunk ended inside it (type byte and length bytes) */
  #head: number[] = [];
  #lost = false;
  /** the largest packet seen so far, whole (fixed header, length and body) */
  largest = 0;

  /** aligned: the next byte starts a packet (nothing is partly passed) */
  get aligned(): boolean {
    return this.#skip === 0 && this.#head.length === 0 && !this.#lost;
  }

  pass(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.#lost) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      const head = this.#head;
      head.push(chunk[i++]!);
      if (head.length < 2 || head[head.length - 1]! & 128) {
        if (head.length >= 5) this.#lost = true; // a malformed length: mqtt.js fails the connection
        continue;
      }
      let length = 0;
      for (let k = head.length - 1; k >= 1; k--) length = length * 128 + (head[k]! & 127);
      const whole = head.length + length;
      this.#head = [];
      this.#skip = length;
      if (whole > this.largest) this.largest = whole;
    }
  }
}

/**
 * tapPubacks: the bytes from the upstream, looked at before mqtt.js parses them. (1) A packet longer than
 * `maxPacket` (its length is read from its header, before its body arrives) is not passed on: `tooLarge`
 * closes the connection, so an upstream cannot make the appliance buffer up to 256 MiB per connection.
 * (2) PUBACKs: mqtt.js parses every packet into an object, emits it twice, reschedules its keepalive timer
 * and takes a turn of the event loop per packet; the uplink's PUBACKs (one per message forwarded) need only
 * their identifier. A chunk that is nothing but PUBACKs, arriving while mqtt.js has nothing of its own
 * half-read or queued, is given to `take` (the pairs of `pubacks`); if `take` wants them all (false: one
 * is not the uplink's) the chunk stops here. Everything else goes to mqtt.js as before, in order. False
 * when the stream is not piped to mqtt.js as expected (the PUBACKs then reach the uplink through mqtt.js'
 * `packetreceive`, and mqtt.js takes packets of any size).
 */
export function tapPubacks(
  stream: unknown,
  protocol: 4 | 5,
  maxPacket: number,
  take: (acks: number[]) => boolean,
  tooLarge: (length: number) => void,
): boolean {
  const state = (stream as { _readableState?: { pipes?: unknown[] } })._readableState;
  const dest =
    state?.pipes?.length === 1 ? (state.pipes[0] as { write?: unknown; writableLength?: number }) : undefined;
  if (!dest || typeof dest.write !== "function" || typeof dest.writableLength !== "number") return false;
  const write = dest.write as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
  const bounds = new Boundaries();
  const acks: number[] = [];
  let closed = false;
  dest.write = (chunk: Uint8Array, ...rest: unknown[]) => {
    if (closed) return true;
    if (!(chunk instanceof Uint8Array)) return write.call(dest, chunk, ...rest);
    if (bounds.aligned && dest.writableLength === 0 && pubacks(chunk, protocol, acks) && take(acks)) return true;
    bounds.pass(chunk);
    if (bounds.largest > maxPacket) {
      closed = true;
      tooLarge(bounds.largest);
      return true;
    }
    return write.call(dest, chunk, ...rest);
  };
  return true;
}
