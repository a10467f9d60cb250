import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

/** connectMqtt: a real mqtt.js client over TCP; resolves when connected, rejects with the CONNACK code. */
export function connectMqtt(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: "127.0.0.1", port, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
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
