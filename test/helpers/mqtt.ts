import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import * as mqttPacket from "mqtt-packet";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";

/**
 * connectMqtt: a real mqtt.js client over TCP; resolves when connected, rejects with the CONNACK code.
 * `localAddress` binds it to another loopback address (127.0.0.2, ...), as a second device would be.
 */
export function connectMqtt(port: number, opts: IClientOptions & { localAddress?: string } = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const { localAddress, ...rest } = opts;
    const options = {
      host: "127.0.0.1",
      port,
      protocolVersion: 4 as const,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...rest,
    };
    const tls = (rest as { protocol?: string }).protocol === "mqtts";
    const client = localAddress
      ? new mqtt.MqttClient(
          () =>
            tls
              ? tlsConnect({
                  host: options.host,
                  port,
                  rejectUnauthorized: options.rejectUnauthorized,
                  ca: options.ca,
                  servername: options.servername,
                  ...({ localAddress } as object),
                })
              : netConnect({ host: options.host, port, localAddress }),
          options,
        )
      : mqtt.connect(options);
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    // A socket the broker closes before any CONNACK (connection limit) gives no error, only close.
    client.once("close", () => {
      if (!client.connected) reject(Object.assign(new Error("closed before CONNACK"), { code: -1 }));
    });
  });
}

/** refusalCode: the CONNACK return code a connect attempt gets (0 when it got in). */
export async function refusalCode(port: number, opts: IClientOptions): Promise<number> {
  try {
    const c = await connectMqtt(port, opts);
    await c.endAsync();
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** closed: resolves when the broker drops the client. */
export function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.connected ? client.once("close", () => resolve()) : resolve()));
}

/** nextMessage: the next message on any subscribed topic, or undefined after `ms`. */
export function nextMessage(client: MqttClient, ms = 1000): Promise<{ topic: string; payload: string } | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off("message", on);
      resolve(undefined);
    }, ms);
    const on = (topic: string, payload: Buffer) => {
      clearTimeout(timer);
      client.off("message", on);
      resolve({ topic, payload: payload.toString() });
    };
    client.on("message", on);
  });
}

/** subackCodes: the SUBACK return code per filter (128 = refused); mqtt.js rejects on any 128. */
export function subackCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, { qos: 0 }, (err, granted) => {
      const packet = (err as { packet?: { granted?: (number | { qos: number })[] } } | null)?.packet;
      if (packet?.granted) return resolve(packet.granted.map((g) => (typeof g === "number" ? g : g.qos)));
      if (err) return reject(err);
      resolve((granted ?? []).map((g) => g.qos));
    });
  });
}

/**
 * RawMqtt: a bare TCP client that sends packets exactly as given (mqtt-packet encodes them, or raw
 * bytes), for the shapes a polite client library never produces.
 */
export interface RawMqtt {
  send(packet: Record<string, unknown> | Uint8Array): void;
  /** the next packet the broker sends, or undefined if the connection closes first */
  next(): Promise<Record<string, any> | undefined>;
  closed: Promise<void>;
  readonly isClosed: boolean;
  destroy(): void;
}

/**
 * rawMqtt: `protocolVersion` is how packets are encoded and the broker's packets parsed (5: properties,
 * reason codes); `localAddress` binds it to another loopback address, as another client would be.
 */
export function rawMqtt(
  port: number,
  host = "127.0.0.1",
  protocolVersion: 3 | 4 | 5 = 4,
  localAddress?: string,
): Promise<RawMqtt> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host, localAddress });
    const parser = mqttPacket.parser({ protocolVersion });
    const queue: Record<string, any>[] = [];
    const waiting: ((p: Record<string, any> | undefined) => void)[] = [];
    let isClosed = false;
    parser.on("packet", (p: Record<string, any>) => {
      const w = waiting.shift();
      if (w) w(p);
      else queue.push(p);
    });
    socket.on("data", (d: Buffer) => parser.parse(d));
    const closed = new Promise<void>((r) =>
      socket.on("close", () => {
        isClosed = true;
        for (const w of waiting.splice(0)) w(undefined);
        r();
      }),
    );
    socket.on("error", () => {});
    socket.once("connect", () =>
      resolve({
        send: (packet) =>
          socket.write(
            packet instanceof Uint8Array ? packet : mqttPacket.generate(packet as never, { protocolVersion }),
          ),
        next: () =>
          queue.length
            ? Promise.resolve(queue.shift())
            : isClosed
              ? Promise.resolve(undefined)
              : new Promise((r) => waiting.push(r)),
        closed,
        get isClosed() {
          return isClosed;
        },
        destroy: () => socket.destroy(),
      }),
    );
    socket.once("error", reject);
  });
}

/** connectPacket: a CONNECT for rawMqtt with the usual fields filled in. */
export function connectPacket(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    clientId: "",
    ...fields,
  };
}

/**
 * connectWithInbox: like connectMqtt, but every message is kept from the first byte on: a persistent
 * session's queue arrives right behind CONNACK, before a listener added after `connect` would see it.
 */
export async function connectWithInbox(port: number, opts: IClientOptions = {}) {
  const inbox: { topic: string; payload: string }[] = [];
  const waiting: ((m: { topic: string; payload: string }) => void)[] = [];
  const client = await new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect({
      host: "127.0.0.1",
      port,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...opts,
    });
    c.on("message", (topic, payload) => {
      const m = { topic, payload: payload.toString() };
      const w = waiting.shift();
      if (w) w(m);
      else inbox.push(m);
    });
    c.once("connect", () => resolve(c));
    c.once("error", (err) => (c.end(true), reject(err)));
  });
  return {
    client,
    /** next: the oldest message not taken yet (waits for one) */
    next: () =>
      inbox.length
        ? Promise.resolve(inbox.shift()!)
        : new Promise<{ topic: string; payload: string }>((r) => waiting.push(r)),
  };
}
