import type { Aedes, Client } from "aedes";
import { generate } from "mqtt-packet";

/**
 * The reaches into aedes' and mqtt-packet's internals, in one place (pinned: aedes 2.0.0-beta.1,
 * mqtt-packet 9, aedes-persistence 10). `assertAedesShape` runs when the broker starts and fails loudly
 * if an upgrade changed what these rely on, instead of silently losing a limit.
 */
const pinned = "aedes 2.0.0-beta.1 (mqtt-packet 9, aedes-persistence 10)";

interface PacketParser {
  _parseLength(): boolean;
  packet: { length: number };
  _emitError(e: Error): void;
}

interface BrokerInternals {
  publish(packet: object, client: Client | null, done?: (err?: Error | null) => void): void;
  persistence: {
    createRetainedStream(pattern: string): AsyncIterable<{ topic: string; payload: Buffer | string }>;
    cleanSubscriptions(client: { id: string }): Promise<unknown>;
  };
}

function fail(what: string): never {
  throw new Error(`aedes internals changed: ${what}; written against ${pinned} (see src/listeners/mqtt/aedes-internals.ts)`);
}

/** assertAedesShape: every internal used below exists on this broker and on a parser of its clients. */
export function assertAedesShape(broker: Aedes, parser: unknown): void {
  const b = broker as unknown as Partial<BrokerInternals>;
  if (typeof b.publish !== "function") fail("broker.publish is missing");
  if (typeof b.persistence?.createRetainedStream !== "function") fail("persistence.createRetainedStream is missing");
  if (typeof b.persistence?.cleanSubscriptions !== "function") fail("persistence.cleanSubscriptions is missing");
  const p = parser as Partial<PacketParser> | undefined;
  if (typeof p?._parseLength !== "function" || typeof p._emitError !== "function") fail("the client's mqtt-packet parser has no _parseLength/_emitError");
}

/** parserOf: the client's mqtt-packet parser. */
export function parserOf(client: Client): unknown {
  return (client as unknown as { _parser?: unknown })._parser;
}

/**
 * limitPacketSize: aedes buffers a packet until its declared length has arrived, so one client could
 * announce 256 MB. The parser is asked to fail as soon as the remaining length is read.
 */
export function limitPacketSize(client: Client, maxBytes: number): void {
  const parser = parserOf(client) as PacketParser;
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    const done = parseLength();
    if (done && parser.packet.length > maxBytes) {
      parser._emitError(new Error(`packet of ${parser.packet.length} bytes exceeds the limit of ${maxBytes}`));
      return false;
    }
    return done;
  };
}

/**
 * refuseUnknownProtocolLevels: mqtt-packet rejects a CONNECT of protocol level 6 and up before aedes
 * sees it, and aedes then closes without an answer. [MQTT-3.1.2-2] asks for CONNACK 1 first.
 */
export function refuseUnknownProtocolLevels(client: Client, onRefused: () => void): void {
  const parser = parserOf(client) as PacketParser;
  const emitError = parser._emitError.bind(parser);
  parser._emitError = (err: Error) => {
    if (err?.message === "Invalid protocol version") {
      onRefused();
      (client.conn as { write(b: Uint8Array): void }).write(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
    }
    emitError(err);
  };
}

/**
 * refuseV5: aedes' authenticate hook maps only return codes 2-5 to MQTT 5 reason codes; a refusal it
 * cannot express (0x9F connection rate exceeded) is written here, and the client closed before aedes
 * answers (its authenticate callback then sees a closed client and writes nothing more).
 */
export function refuseV5(client: Client, reasonCode: number): void {
  (client.conn as { write(b: Uint8Array): void }).write(generate({ cmd: "connack", reasonCode, sessionPresent: false } as never, { protocolVersion: 5 }));
  client.close();
}

/**
 * disconnectV5: DISCONNECT with a reason code, then close. aedes' own `disconnect` only writes it once
 * the connect sequence is over; a kick can come right behind the CONNACK, before that.
 */
export function disconnectV5(client: Client, reasonCode: number): void {
  const c = client as unknown as { connected: boolean; disconnect(opts: { reasonCode: number }, done: () => void): void };
  if (c.connected) return c.disconnect({ reasonCode }, () => {});
  (client.conn as { write(b: Uint8Array): void }).write(generate({ cmd: "disconnect", reasonCode } as never, { protocolVersion: 5 }));
  client.close();
}

/**
 * dropPublishes: aedes has no way for `authorizePublish` to refuse a message without closing the
 * connection, yet [MQTT-3.3.5-2] wants it acknowledged and not forwarded. The packets in `dropped`
 * are acknowledged by aedes as usual and then never reach routing, retained storage or offline queues.
 */
export function dropPublishes(broker: Aedes, dropped: WeakSet<object>): void {
  const b = broker as unknown as BrokerInternals;
  const publish = b.publish.bind(broker);
  b.publish = (packet, client, done) => {
    if (dropped.has(packet)) return done?.(null);
    publish(packet, client, done);
  };
}

export function retainedStream(broker: Aedes, pattern: string): AsyncIterable<{ topic: string; payload: Buffer | string }> {
  return (broker as unknown as BrokerInternals).persistence.createRetainedStream(pattern);
}

/** forgetSession: a stored persistent session's subscriptions go; nothing more is queued for it. */
export function forgetSession(broker: Aedes, clientId: string): Promise<unknown> {
  return (broker as unknown as BrokerInternals).persistence.cleanSubscriptions({ id: clientId });
}

/**
 * handleOnFirstBytes: the socket goes to aedes once it has sent something, not on accept. An aedes
 * client (parser, timers, listeners; ~5 KiB and ~100 µs to make and tear down) is then made only for
 * a peer that speaks: a silent socket costs the accept pool's entry and the socket alone. aedes reads
 * a connection on `readable` (`conn.read(null)` in its client's constructor-installed listener); the
 * bytes that woke this one are still buffered, so that listener is called once by hand.
 */
export function handleOnFirstBytes(broker: Aedes, socket: NodeJS.ReadableStream, onClient: (client: Client) => void): void {
  socket.once("readable", () => {
    const before = socket.listenerCount("readable");
    const client = broker.handle(socket as never);
    if (socket.listenerCount("readable") <= before) fail("aedes no longer reads its connection on `readable`");
    onClient(client);
    socket.emit("readable");
  });
}
