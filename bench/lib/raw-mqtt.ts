/**
 * A raw-socket MQTT 3.1.1 load generator for the benchmarks: just CONNECT, SUBSCRIBE, PUBLISH QoS 0
 * and DISCONNECT over Bun.connect, so the load costs far less CPU than the broker under test and the
 * brokers are compared, not the client library.
 */
import type { Socket } from "bun";

const enc = new TextEncoder();

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string | Uint8Array): number[] {
  const b = typeof s === "string" ? enc.encode(s) : s;
  return [b.length >> 8, b.length & 0xff, ...b];
}

function packet(first: number, body: number[]): Uint8Array {
  return Uint8Array.from([first, ...remainingLength(body.length), ...body]);
}

export function connectPacket(
  clientId: string,
  username: string,
  password: string,
  keepalive = 60,
  clean = true,
): Uint8Array {
  return packet(0x10, [
    ...str("MQTT"),
    4,
    clean ? 0xc2 : 0xc0,
    keepalive >> 8,
    keepalive & 0xff,
    ...str(clientId),
    ...str(username),
    ...str(password),
  ]);
}

export const disconnectPacket = Uint8Array.from([0xe0, 0]);

export function subscribePacket(topic: string, id = 1, qos = 0): Uint8Array {
  return packet(0x82, [id >> 8, id & 0xff, ...str(topic), qos]);
}

/** publishQos1Packet: a QoS 1 PUBLISH with packet identifier `id` (1-65535). */
export function publishQos1Packet(topic: string, payload: Uint8Array, id: number, retain = false): Uint8Array {
  return packet(retain ? 0x33 : 0x32, [...str(topic), id >> 8, id & 0xff, ...payload]);
}

/** pubackPacket: the acknowledgement of a QoS 1 PUBLISH received. */
export function pubackPacket(id: number): Uint8Array {
  return Uint8Array.from([0x40, 2, id >> 8, id & 0xff]);
}

export function publishPacket(topic: string, payload: string): Uint8Array {
  return packet(0x30, [...str(topic), ...enc.encode(payload)]);
}

export interface Received {
  type: number;
  body: Uint8Array;
}

/** RawClient: one TCP connection; `next(type)` waits for the next packet of that type. */
export class RawClient {
  private buf = new Uint8Array(0);
  private waiters: { type: number; resolve(p: Received): void }[] = [];
  private pending: Uint8Array[] = [];
  onPublish?: (payload: Uint8Array) => void;
  /** onQos1: a QoS 1 PUBLISH received, with its packet identifier (the receiver acknowledges it) */
  onQos1?: (id: number, payload: Uint8Array) => void;
  /** onPuback: the broker acknowledged the QoS 1 PUBLISH with this packet identifier */
  onPuback?: (id: number) => void;
  closed: Promise<void>;
  private closedResolve!: () => void;

  private constructor(private socket: Socket<undefined>) {
    this.closed = new Promise((r) => (this.closedResolve = r));
  }

  static async open(port: number): Promise<RawClient> {
    let client!: RawClient;
    await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          client = new RawClient(socket);
        },
        data(_s, data) {
          client.feed(data);
        },
        drain() {
          client.flush();
        },
        close() {
          client.closedResolve();
        },
        error() {
          client.closedResolve();
        },
      },
    });
    return client;
  }

  /** connect: CONNECT and wait for CONNACK; returns its return code. */
  static async connect(
    port: number,
    clientId: string,
    username: string,
    password: string,
    clean = true,
  ): Promise<RawClient> {
    const c = await RawClient.open(port);
    c.send(connectPacket(clientId, username, password, 60, clean));
    const ack = await c.next(2);
    if (ack.body[1] !== 0) throw new Error(`CONNACK ${ack.body[1]}`);
    return c;
  }

  send(bytes: Uint8Array) {
    if (this.pending.length) {
      this.pending.push(bytes);
      return;
    }
    const n = this.socket.write(bytes);
    if (n < bytes.length) this.pending.push(bytes.subarray(Math.max(0, n)));
  }

  private flush() {
    while (this.pending.length) {
      const b = this.pending[0]!;
      const n = this.socket.write(b);
      if (n < b.length) {
        this.pending[0] = b.subarray(Math.max(0, n));
        return;
      }
      this.pending.shift();
    }
  }

  /** backlog: bytes not yet handed to the kernel (for pacing a publisher). */
  get backlog() {
    return this.pending.length;
  }

  next(type: number): Promise<Received> {
    return new Promise((resolve) => this.waiters.push({ type, resolve }));
  }

  async subscribe(topic: string) {
    this.send(subscribePacket(topic));
    await this.next(9);
  }

  async disconnect() {
    this.send(disconnectPacket);
    this.socket.end();
    await this.closed;
  }

  close() {
    this.socket.end();
  }

  private feed(data: Uint8Array) {
    if (this.buf.length) {
      const joined = new Uint8Array(this.buf.length + data.length);
      joined.set(this.buf);
      joined.set(data, this.buf.length);
      data = joined;
    }
    let off = 0;
    for (;;) {
      if (data.length - off < 2) break;
      let len = 0;
      let mul = 1;
      let i = off + 1;
      let complete = false;
      while (i < data.length) {
        const b = data[i++]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if (!(b & 0x80)) {
          complete = true;
          break;
        }
      }
      if (!complete || data.length - i < len) break;
      const first = data[off]!;
      const type = first >> 4;
      const body = data.subarray(i, i + len);
      off = i + len;
      if (type === 3) {
        const topicLen = (body[0]! << 8) | body[1]!;
        const qos = (first >> 1) & 3;
        if (qos > 0 && this.onQos1) {
          this.onQos1((body[2 + topicLen]! << 8) | body[3 + topicLen]!, body.subarray(4 + topicLen));
          continue;
        }
        if (this.onPublish) {
          this.onPublish(body.subarray(2 + topicLen + (qos > 0 ? 2 : 0)));
          continue;
        }
      }
      if (type === 4 && this.onPuback) {
        this.onPuback((body[0]! << 8) | body[1]!);
        continue;
      }
      const w = this.waiters.findIndex((x) => x.type === type);
      if (w >= 0) this.waiters.splice(w, 1)[0]!.resolve({ type, body: body.slice() });
    }
    this.buf = off < data.length ? data.slice(off) : new Uint8Array(0);
  }
}
