import type { Aedes, Client } from "aedes";
import memory from "aedes-persistence";
import mqttPacket, { generate } from "mqtt-packet";
import { Readable } from "node:stream";
import { quotaExceeded } from "./broker-journal.ts";
import { deliverable } from "./properties.ts";

/**
 * The reaches into aedes' and mqtt-packet's internals, in one place (pinned: aedes 2.0.0-beta.1,
 * mqtt-packet 9, aedes-persistence 10). `assertAedesShape` runs when the broker starts and fails loudly
 * if an upgrade changed what these rely on, instead of silently losing a limit.
 */
const pinned = "aedes 2.0.0-beta.1 (mqtt-packet 9, aedes-persistence 10)";

interface PacketParser {
  _parseHeader(): boolean;
  _parseLength(): boolean;
  /** a packet's MQTT 5 properties; a property given twice becomes an array of its values */
  _parseProperties(): Record<string, unknown> | null;
  packet: { length: number };
  _emitError(e: Error): void;
  parse(buf: Buffer): number;
  /** bytes received and not parsed yet */
  _list: { length: number; append(buf: Buffer): void };
  /** packets (aedes) parsed before the CONNACK went out, handled once it has (null from then on) */
  _queue: unknown[] | null;
  removeAllListeners(event: "packet"): void;
  prependListener(event: "packet", fn: (packet: { cmd: string; messageId?: number }) => void): void;
  on(event: "packet", listener: (packet: { cmd: string; messageId?: number; reasonCode?: number }) => void): void;
}

interface ClientInternals {
  _parser: PacketParser;
  /** a CONNECT is being handled by aedes (login, session, CONNACK, queued messages) */
  connecting: boolean;
  connackSent: boolean;
  connected: boolean;
  pause(): void;
  resume(): void;
  disconnect(opts: { reasonCode?: number }, done?: () => void): void;
}

interface BrokerInternals {
  publish(packet: object, client: Client | null, done?: (err?: Error | null) => void): void;
  authorizePublish(client: Client | null, packet: PublishLike, done: (err?: Error | null) => void): void;
  handle(conn: unknown, req?: unknown): Client;
  persistence: {
    createRetainedStream(pattern: string): AsyncIterable<{ topic: string; payload: Buffer | string }>;
    cleanSubscriptions(client: { id: string }): Promise<unknown>;
    outgoingStream(client: Client): Readable;
  };
}

interface PublishLike {
  cmd?: string;
  qos?: number;
  messageId?: number;
  /** aedes (v5): the PUBLISH was answered with a refusal already; it neither acknowledges nor publishes it */
  _notAuthorized?: boolean;
}

function fail(what: string): never {
  throw new Error(
    `aedes internals changed: ${what}; written against ${pinned} (see src/listeners/mqtt/aedes-internals.ts)`,
  );
}

/** assertAedesShape: every internal used below exists on this broker and on a parser of its clients. */
export function assertAedesShape(broker: Aedes, parser: unknown): void {
  const b = broker as unknown as Partial<BrokerInternals>;
  if (typeof b.publish !== "function") fail("broker.publish is missing");
  if (typeof b.persistence?.createRetainedStream !== "function") fail("persistence.createRetainedStream is missing");
  if (typeof b.persistence?.cleanSubscriptions !== "function") fail("persistence.cleanSubscriptions is missing");
  const p = parser as Partial<PacketParser> | undefined;
  if (typeof p?._parseLength !== "function" || typeof p._emitError !== "function")
    fail("the client's mqtt-packet parser has no _parseLength/_emitError");
  if (typeof p._parseProperties !== "function") fail("the client's mqtt-packet parser has no _parseProperties");
}

/** assertBrokerShape: what the broker-wide patches below rely on, checked before they are installed. */
export function assertBrokerShape(broker: Aedes): void {
  const b = broker as unknown as Partial<BrokerInternals>;
  if (typeof b.publish !== "function") fail("broker.publish is missing");
  if (typeof b.persistence?.outgoingStream !== "function") fail("persistence.outgoingStream is missing");
  if (typeof b.handle !== "function") fail("broker.handle is missing");
  if (typeof b.authorizePublish !== "function") fail("broker.authorizePublish is missing");
}

/** assertClientShape: what the per-client patches below rely on, checked on a client before it has read a byte. */
export function assertClientShape(client: Client): void {
  const c = client as unknown as Partial<ClientInternals>;
  const p = c._parser as Partial<PacketParser> | undefined;
  if (typeof p?._parseHeader !== "function" || typeof p.parse !== "function" || typeof p._list?.append !== "function") {
    fail("the client's mqtt-packet parser has no _parseHeader/parse/_list");
  }
  if (!Array.isArray(p._queue)) fail("client._parser._queue (packets before CONNACK) is missing");
  if (typeof c.disconnect !== "function") fail("client.disconnect is missing");
  if (c.connecting !== false || c.connackSent !== false) fail("client.connecting/connackSent is missing");
  if (typeof c.pause !== "function" || typeof c.resume !== "function") fail("client.pause/resume is missing");
}

/** parserOf: the client's mqtt-packet parser. */
export function parserOf(client: Client): unknown {
  return (client as unknown as { _parser?: unknown })._parser;
}

/**
 * limitPacketSize: aedes buffers a packet until its declared length has arrived, so one client could
 * announce 256 MB. The parser is asked to fail as soon as the remaining length is read. The first packet
 * (the CONNECT, before any login) has a bound of its own: a stranger holding half a CONNECT on each of
 * `--max-pending` sockets holds that much memory per socket (with the packet limit alone, 1 MiB each: 2 GiB).
 */
export function limitPacketSize(client: Client, maxBytes: number, maxConnectBytes = maxBytes): void {
  const parser = parserOf(client) as PacketParser;
  const parseLength = parser._parseLength.bind(parser);
  let limit = Math.min(maxBytes, maxConnectBytes);
  parser._parseLength = () => {
    const done = parseLength();
    if (done && parser.packet.length > limit) {
      const what = limit < maxBytes ? "CONNECT" : "packet";
      parser._emitError(new Error(`${what} of ${parser.packet.length} bytes exceeds the limit of ${limit}`));
      return false;
    }
    if (done) limit = maxBytes; // past the first packet's length: the rest are bounded by the packet limit
    return done;
  };
}

/**
 * refuseRepeatedProperties: MQTT 5 allows only User Properties more than once in a packet (a second
 * Session Expiry, Message Expiry, Will Delay ... is a Protocol Error, §2.2.2.2). mqtt-packet turns a
 * repeated property into an array of its values, and aedes used that array as a number: a CONNECT or
 * DISCONNECT with Session Expiry Interval twice armed a timer with NaN, which threw on the event loop and
 * stopped the whole appliance; a PUBLISH with Message Expiry twice was stored and passed on so. Such a
 * packet is now a malformed one: the connection closes, as on any other.
 */
export function refuseRepeatedProperties(client: Client): void {
  const parser = parserOf(client) as PacketParser;
  const parseProperties = parser._parseProperties.bind(parser);
  parser._parseProperties = () => {
    const properties = parseProperties();
    if (properties)
      for (const name of Object.keys(properties))
        if (name !== "userProperties" && Array.isArray(properties[name])) {
          parser._emitError(new Error(`MQTT 5 property ${name} given more than once`));
          break;
        }
    return properties;
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
  (client.conn as { write(b: Uint8Array): void }).write(
    generate({ cmd: "connack", reasonCode, sessionPresent: false } as never, { protocolVersion: 5 }),
  );
  client.close();
}

/**
 * disconnectV5: DISCONNECT with a reason code, then close. aedes' own `disconnect` only writes it once
 * the connect sequence is over; a kick can come right behind the CONNACK, before that.
 */
export function disconnectV5(client: Client, reasonCode: number): void {
  const c = client as unknown as {
    connected: boolean;
    disconnect(opts: { reasonCode: number }, done: () => void): void;
  };
  if (c.connected) {
    c.disconnect({ reasonCode }, () => {});
    return;
  }
  (client.conn as { write(b: Uint8Array): void }).write(
    generate({ cmd: "disconnect", reasonCode } as never, { protocolVersion: 5 }),
  );
  client.close();
}

/**
 * dropPublishes: aedes has no way for `authorizePublish` to refuse a message without closing the
 * connection, yet [MQTT-3.3.5-2] wants it acknowledged and not forwarded. The packets in `dropped`
 * are acknowledged by aedes as usual and then never reach routing, retained storage or offline queues.
 * Those in `published` were published before their PUBACK (`publishBeforePuback`): not a second time.
 */
export function dropPublishes(broker: Aedes, dropped: WeakSet<object>, published: WeakSet<object>): void {
  const b = broker as unknown as BrokerInternals;
  const publish = b.publish.bind(broker);
  b.publish = (packet, client, done) => {
    if (dropped.has(packet) || published.has(packet)) return done?.(null);
    publish(packet, client, done);
  };
}

/**
 * publishBeforePuback: acknowledged means durable. aedes 2.0.0-beta.1 answers a QoS 1 PUBLISH with its
 * PUBACK first and publishes it afterwards (lib/handlers/publish.js, `enqueuePublish`, case 1:
 * `write(client, new PubAck(packet), () => client.broker.publish(packet, client, done))`), so a PUBACK
 * could go out for a message the store then lost. QoS 2 already has the right order (`incomingStorePacket`,
 * then `broker.publish`, then PUBREC), and `broker.publish` calls back only after its `storeRetained` and
 * `enqueueOffline` steps (aedes.js, `publishFuncsQoS`), whose persistence promises the durable store
 * resolves once the batch holding the write is committed. So a client's QoS 1 PUBLISH is published here,
 * right after `authorizePublish` allowed it and before aedes writes the PUBACK; aedes' own publish of it is
 * then skipped (`skip`, see `dropPublishes`). If the store could not take it, nothing is acknowledged:
 * an MQTT 5 client gets PUBACK 0x97 (quota exceeded: a full disk, its integration's share) or 0x80, a 3.1.1 client (no negative
 * PUBACK) loses the connection and sends the message again when it reconnects. So does a QoS 1 or 2
 * message a durable tap could not store (an uplink's outbox on a full disk: `authorizePublish` fails with a
 * BusNotStoredError); a QoS 2 one gets PUBREC with that code.
 */
export function publishBeforePuback(
  broker: Aedes,
  skip: WeakSet<object>,
  refused: (client: Client, err: Error) => void,
): void {
  const b = broker as unknown as BrokerInternals;
  const authorize = b.authorizePublish.bind(broker);
  b.authorizePublish = (client, packet, done) =>
    authorize(client, packet, (err) => {
      /** notStored: nothing is acknowledged; the client is told, as its protocol allows */
      const notStored = (client: Client, e: Error) => {
        refused(client, e);
        if (client.version !== 5) return done(e); // aedes closes a 3.1.1 connection on this error
        // a full disk, or the integration's share of the store (persistence.ts `shareBytes`): quota exceeded
        const code = (e as { code?: string }).code;
        const full = code === "SQLITE_FULL" || code === quotaExceeded || (e as { full?: boolean }).full === true;
        const cmd = packet.qos === 2 ? "pubrec" : "puback";
        (client.conn as { write(b: Uint8Array): void }).write(
          generate({ cmd, messageId: packet.messageId, reasonCode: full ? 0x97 : 0x80 } as never, {
            protocolVersion: 5,
          }),
        );
        packet._notAuthorized = true; // answered: aedes writes no PUBACK of its own and does not publish it
        done(null);
      };
      // a durable tap could not store it (see hooks.ts `authorizePublish`)
      if (err?.name === "BusNotStoredError" && client && packet.cmd === "publish" && (packet.qos ?? 0) > 0)
        return notStored(client, err);
      if (err || !client || packet.cmd !== "publish" || packet.qos !== 1) return done(err);
      b.publish(packet, client, (publishErr) => {
        if (!publishErr) {
          skip.add(packet);
          return done(null);
        }
        notStored(client, publishErr);
      });
    });
}

/**
 * attributePublishes: `around(client)` runs right before aedes handles a publish (a client's, one of its wills;
 * null: the broker's own) and the function it returns right after that call's first turn. aedes' `publish` runs
 * its steps in series from there (`runSeries`), and the first, `storeRetained`, calls the persistence at once:
 * so the store can tell whose retained value it keeps (persistence.ts `publisher`). Install last: outermost.
 */
export function attributePublishes(
  broker: Aedes,
  around: (packet: { qos?: number }, client: Client | null) => () => void,
): void {
  const b = broker as unknown as BrokerInternals;
  const publish = b.publish.bind(broker);
  b.publish = (packet, client, done) => {
    const after = around(packet, typeof client === "function" ? null : client);
    try {
      publish(packet, client, done);
    } finally {
      after();
    }
  };
}

/**
 * deliverOnlyPublishProperties: every message the broker publishes (a client's, a will, the core's)
 * keeps only the properties a PUBLISH may carry. A will arrives with its Will Properties, and aedes
 * published them as they were, Will Delay Interval (0x18) included. Install before `dropPublishes`,
 * which must see the packet aedes handed over.
 */
export function deliverOnlyPublishProperties(broker: Aedes): void {
  const b = broker as unknown as BrokerInternals;
  const publish = b.publish.bind(broker);
  b.publish = (packet, client, done) =>
    publish(deliverable(packet as { properties?: Record<string, unknown> }), client, done);
}

/**
 * markRedeliveries: [MQTT-3.3.1-1] a PUBLISH sent again after a reconnect carries DUP=1. aedes resends a
 * persistent session's queue from `outgoingStream` with the flag as it was stored (0). A queued message
 * that already has a packet identifier was handed to an earlier connection and not acknowledged; one
 * without was queued while the client was away and goes out for the first time (DUP=0, as Mosquitto).
 */
export function markRedeliveries(broker: Aedes): void {
  const persistence = (broker as unknown as BrokerInternals).persistence;
  const outgoingStream = persistence.outgoingStream.bind(persistence);
  persistence.outgoingStream = (client) => {
    const stored = outgoingStream(client);
    return Readable.from(
      (async function* () {
        for await (const packet of stored as AsyncIterable<{ cmd?: string; messageId?: number; dup?: boolean }>) {
          yield packet.cmd === "publish" && packet.messageId !== undefined && packet.messageId !== null
            ? { ...packet, dup: true }
            : packet;
        }
      })(),
    );
  };
}

/** eachClient: `patch` runs on every client aedes makes, before it reads a byte. */
export function eachClient(broker: Aedes, patch: (client: Client) => void): void {
  const b = broker as unknown as BrokerInternals;
  const handle = b.handle.bind(broker);
  b.handle = (conn, req) => {
    const client = handle(conn, req);
    patch(client);
    return client;
  };
}

/**
 * holdUntilConnack: MQTT lets a client send right behind its CONNECT (3.1.1 §3.1.4), before the CONNACK.
 * aedes parses whatever has arrived, queues the packets until the CONNACK is out and closes the connection
 * once `queueLimit` (42) are queued; a larger limit is no cure: the queue is handled in one synchronous
 * loop, and 30 000+ queued QoS 1 publishes crashed the process ("Maximum call stack size exceeded" in
 * mqemitter). Here the parser stops after the CONNECT and the client stops reading until the CONNACK is
 * written: what follows stays unparsed bytes (what one read brought) and then waits in TCP on the client's
 * side. aedes resumes reading right after the CONNACK; the held bytes are parsed then, before anything read
 * later, and handled as any later data. aedes' own queue stays empty.
 */
export function holdUntilConnack(client: Client): void {
  const c = client as unknown as ClientInternals;
  const parser = c._parser;
  const parseHeader = parser._parseHeader.bind(parser);
  // `connecting`: from the CONNECT's handling to the end of the connect sequence; `connackSent`: once written
  parser._parseHeader = () => {
    if (!c.connecting || c.connackSent) return parseHeader();
    c.pause(); // aedes' authenticate pauses too, a little later; its resume comes right after the CONNACK
    return false;
  };
  // A packet handled at once can end aedes' batch while its parse loop runs, and aedes then reads and
  // parses the next data from inside that loop: mqtt-packet's parser is not re-entrant, and the stream
  // was misread ("Not supported", "Invalid header flag bits" on a well-formed stream). Bytes that arrive
  // so are appended for the running loop, which parses them in order.
  const parse = parser.parse.bind(parser);
  let parsing = false;
  parser.parse = (buf) => {
    if (parsing) {
      parser._list.append(buf);
      return parser._list.length;
    }
    parsing = true;
    try {
      return parse(buf);
    } finally {
      parsing = false;
    }
  };
  // aedes' resume reads what arrived meanwhile (parsed behind the held bytes); when nothing did, the held
  // bytes are parsed here
  const resume = c.resume.bind(client);
  c.resume = () => {
    resume();
    if (!client.closed && c.connackSent && parser._list.length > 0) parser.parse(Buffer.alloc(0));
  };
}

/**
 * stopAtDisconnect: after the server's DISCONNECT nothing more is handled or sent on that connection
 * [MQTT-3.14.4-1]. aedes closes the connection a tick after writing it and went on meanwhile: a PUBLISH
 * behind an invalid Topic Alias was still published and acknowledged after the DISCONNECT 0x94, and a
 * refused one got its PUBACK 0x87 after a DISCONNECT 0x81. So the parser's packets stop reaching aedes and
 * later writes are dropped. And aedes writes its DISCONNECT only once the connect sequence is over; a client
 * that answers the CONNACK at once (an invalid alias, ...) lost the connection without one: written here.
 */
export function stopAtDisconnect(client: Client): void {
  const c = client as unknown as ClientInternals;
  const conn = client.conn as { write(b: Uint8Array): boolean };
  const disconnect = c.disconnect.bind(client);
  c.disconnect = (opts, done) => {
    c._parser.removeAllListeners("packet");
    if (client.version === 5 && c.connackSent && !c.connected && !client.closed && opts?.reasonCode !== undefined) {
      conn.write(generate({ cmd: "disconnect", reasonCode: opts.reasonCode } as never, { protocolVersion: 5 }));
      conn.write = () => true;
      return client.close(done);
    }
    disconnect(opts, done); // writes its DISCONNECT now (the close follows a tick later)
    conn.write = () => true;
  };
}

export function retainedStream(
  broker: Aedes,
  pattern: string,
): AsyncIterable<{ topic: string; payload: Buffer | string }> {
  return (broker as unknown as BrokerInternals).persistence.createRetainedStream(pattern);
}

/**
 * MemoryCore: the promise-based in-memory persistence inside aedes-persistence 10's callback wrapper. The
 * durable store keeps retained messages and subscriptions there, so topic matching (qlobber) is exactly
 * the library's own; it writes them through to broker.db.
 */
export interface MemoryCore {
  setup(broker: unknown): Promise<void>;
  storeRetained(packet: object): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
  addSubscriptions(client: { id: string }, subs: object[]): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  subscriptionsByClient(client: { id: string }): Promise<object[]>;
  subscriptionsByTopic(topic: string): Promise<{ clientId: string; topic: string; qos: number }[]>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
  getClientList(topic: string): Readable;
}

/** memoryCore: a fresh in-memory persistence of aedes-persistence, its promise-based core. */
export function memoryCore(): MemoryCore {
  const core = (memory() as unknown as { asyncPersistence?: Partial<MemoryCore> }).asyncPersistence;
  for (const m of ["setup", "storeRetained", "createRetainedStreamCombi", "addSubscriptions", "subscriptionsByTopic"])
    if (typeof core?.[m as keyof MemoryCore] !== "function") fail(`aedes-persistence's memory core has no ${m}`);
  return core as MemoryCore;
}

/**
 * handleOnFirstBytes: the socket goes to aedes once it has sent something, not on accept. An aedes
 * client (parser, timers, listeners; ~5 KiB and ~100 µs to make and tear down) is then made only for
 * a peer that speaks: a silent socket costs the accept pool's entry and the socket alone. aedes reads
 * a connection on `readable` (`conn.read(null)` in its client's constructor-installed listener); the
 * bytes that woke this one are still buffered, so that listener is called once by hand.
 */
export function handleOnFirstBytes(
  broker: Aedes,
  socket: NodeJS.ReadableStream,
  onClient: (client: Client) => void,
): void {
  socket.once("readable", () => {
    const before = socket.listenerCount("readable");
    const client = broker.handle(socket as never);
    if (socket.listenerCount("readable") <= before) fail("aedes no longer reads its connection on `readable`");
    onClient(client);
    socket.emit("readable");
  });
}

/**
 * deliverResumedQueue: an MQTT 5 client that resumes its session (Clean Start 0) but asks for Session
 * Expiry 0 gets what was queued for it while it was away; the session then ends with this connection
 * (§3.1.2.4, §3.1.2.11.2). aedes 2.0.0-beta.1 (and its upstream MQTT 5 branch) takes `client.clean` (set
 * from the expiry) to mean "nothing to deliver" in its `emptyQueue` step and drops the queue. So the
 * client counts as not clean until the connect sequence, queue included, is over.
 */
export function deliverResumedQueue(client: Client): void {
  const c = client as unknown as { clean: boolean };
  if (!c.clean) return;
  c.clean = false;
  client.once("connected", () => {
    c.clean = true;
  });
}

/**
 * reasonStringsOnRequest: reason strings on PUBACK/PUBREC only for an MQTT 5 client that sent Request
 * Problem Information 1 itself. Absent, the property means 1 (§3.1.2.11.7) and aedes adds its error text,
 * which is legal, but strict embedded clients (the Eclipse Paho test client among them: "Puback packet is
 * wrong length 45") take an acknowledgement longer than 4 bytes for a broken one; Mosquitto sends none.
 * The reason code alone (0x87) says what happened.
 */
export function reasonStringsOnRequest(
  client: Client,
  packet: { properties?: { requestProblemInformation?: boolean } },
) {
  (client as unknown as { _requestProblemInformation: boolean })._requestProblemInformation =
    packet.properties?.requestProblemInformation === true;
}

/**
 * exceedsClientMaximum: the PUBLISH would be larger than the Maximum Packet Size the MQTT 5 client
 * declared in its CONNECT. The server must not send it [MQTT-3.1.2-24]; it is discarded as if it had
 * been delivered (§3.1.2.11.4). aedes 2.0.0-beta.1 stores the value and sends anyway. Measured as it
 * will be written: its properties (the subscription identifier included) and a packet identifier for
 * QoS 1 and 2 (2 bytes more than a QoS 0 delivery of a downgraded message needs: never too lenient).
 */
export function exceedsClientMaximum(
  client: Client,
  packet: { topic: string; payload?: Buffer | string; qos?: number; properties?: object },
): boolean {
  const max = (client as unknown as { maximumPacketSize?: number }).maximumPacketSize;
  if (client.version !== 5 || !max) return false;
  const payloadBytes = packet.payload?.length ?? 0;
  // the topic is at most 3 bytes a character, the fixed header at most 5 bytes, the rest 5 more
  if (!packet.properties && payloadBytes + packet.topic.length * 3 + 16 <= max) return false;
  const size = generate(
    {
      cmd: "publish",
      topic: packet.topic,
      payload: packet.payload ?? "",
      qos: packet.qos ?? 0,
      messageId: 1,
      properties: packet.properties,
      retain: false,
      dup: false,
    } as never,
    { protocolVersion: 5 },
  ).length;
  return size > max;
}

interface Flow {
  /** an MQTT 5 connection (3.1.1 has no Receive Maximum) */
  active(): boolean;
  /** the client's Receive Maximum (read once its CONNECT is handled) */
  max(): number;
  /** packet identifiers of QoS 1 and 2 PUBLISHes sent and not acknowledged yet */
  inflight: Set<number>;
  /** PUBLISHes waiting for a free slot, in order */
  held: { packet: { messageId: number }; opts: object; bytes: number }[];
  maxHeld: number;
  /** payload bytes waiting, and their bound */
  heldBytes: number;
  maxHeldBytes: number;
  onDrop(): void;
  /** server-assigned topic aliases: the client's Topic Alias Maximum (capped), and those given so far */
  aliasMax: number;
  aliases: Map<string, number>;
}

type WriteToStream = (
  packet: { cmd: string; qos?: number; messageId?: number },
  stream: object,
  opts: object,
) => boolean;

/** flows: each MQTT 5 connection's flow control, by the stream aedes writes to. */
const flows = new WeakMap<object, Flow>();
let writeToStream: WriteToStream | undefined;

/**
 * installWriteHook: every packet aedes writes goes through mqtt-packet's `writeToStream` (called through the
 * module object); the one wrapper there, installed once per process, does three things:
 * - the CONNACK does not say shared subscriptions are unavailable (they are: shared.ts);
 * - a SUBACK says 0x97 for a filter refused for the subscription bounds (`subackQuotaCodes`);
 * - every QoS 1 and 2 PUBLISH (live, queued, retained) to an MQTT 5 client is held at its Receive Maximum
 *   [MQTT-3.3.4-9]: the next waits, in order, until a PUBACK, PUBCOMP or failed PUBREC frees a slot (aedes
 *   2.0.0-beta.1 stores the Receive Maximum and does not enforce it). QoS 0 is not counted (§4.9);
 *   connections without a flow (3.1.1) pass untouched.
 * It returns the write that goes past the flow control (for the held PUBLISHes when a slot frees).
 */
function installWriteHook(): WriteToStream {
  if (writeToStream) return writeToStream;
  const mp = mqttPacket as unknown as { writeToStream?: WriteToStream };
  const original = mp.writeToStream;
  if (typeof original !== "function") fail("mqtt-packet has no writeToStream");
  const send: WriteToStream = (packet, stream, opts) => original(withAlias(packet, flows.get(stream)), stream, opts);
  mp.writeToStream = (packet, stream, opts) => {
    // shared subscriptions are available (shared.ts); aedes' CONNACK says otherwise
    const props = (packet as { properties?: { sharedSubscriptionAvailable?: boolean } }).properties;
    if (packet.cmd === "connack" && props?.sharedSubscriptionAvailable === false)
      delete props.sharedSubscriptionAvailable;
    if (packet.cmd === "suback") quotaCodes(packet, stream, opts as { protocolVersion?: number });
    const flow = flows.get(stream);
    if (!flow?.active() || packet.cmd !== "publish" || !packet.qos || packet.messageId === undefined)
      return send(packet, stream, opts);
    // a PUBLISH sent again (DUP) keeps its slot
    if (flow.inflight.has(packet.messageId) || flow.inflight.size < flow.max()) {
      flow.inflight.add(packet.messageId);
      return send(packet, stream, opts);
    }
    const bytes = (packet as { payload?: { length: number } }).payload?.length ?? 0;
    if (flow.held.length >= flow.maxHeld || flow.heldBytes + bytes > flow.maxHeldBytes) {
      flow.onDrop();
      return true;
    }
    flow.heldBytes += bytes;
    flow.held.push({ packet: packet as { messageId: number }, opts, bytes });
    return true; // aedes goes on as if written (a persistent session's queue still holds it until acknowledged)
  };
  writeToStream = send;
  return send;
}

/** aliasesPerConnection: topic aliases the broker gives one connection at most (the topics it names first). */
const aliasesPerConnection = 16;

/**
 * withAlias: a PUBLISH to an MQTT 5 client that accepts topic aliases (Topic Alias Maximum > 0 in its
 * CONNECT) names its topic once with an alias, then the alias alone (§3.3.2.3.4; a MAY that aedes lacks and
 * Mosquitto skips). Applied as the packet is written, so the order on the wire is the order aliases are set.
 */
function withAlias<P extends { cmd: string; topic?: string; properties?: object }>(
  packet: P,
  flow: Flow | undefined,
): P {
  if (!flow?.active() || flow.aliasMax === 0 || packet.cmd !== "publish" || !packet.topic) return packet;
  const known = flow.aliases.get(packet.topic);
  if (known !== undefined) return { ...packet, topic: "", properties: { ...packet.properties, topicAlias: known } };
  if (flow.aliases.size >= flow.aliasMax) return packet;
  const alias = flow.aliases.size + 1;
  flow.aliases.set(packet.topic, alias);
  return { ...packet, properties: { ...packet.properties, topicAlias: alias } };
}

/**
 * limitInflight: flow control by the client's Receive Maximum (see `installWriteHook`), for MQTT 5
 * clients. At most `maxHeld` PUBLISHes (`maxHeldBytes` of payload) wait for a slot; past that a new one is dropped (`onDrop`), as
 * Mosquitto's max_queued_messages does: a client that never acknowledges cannot make the broker grow.
 */
export function limitInflight(client: Client, maxHeld: number, maxHeldBytes: number, onDrop: () => void): void {
  const write = installWriteHook();
  const c = client as unknown as ClientInternals & { receiveMaximum?: number };
  const stream = client.conn as unknown as object & { destroyed?: boolean };
  const flow: Flow = {
    active: () => client.version === 5,
    max: () => c.receiveMaximum ?? 65_535,
    inflight: new Set(),
    held: [],
    maxHeld,
    heldBytes: 0,
    maxHeldBytes,
    onDrop,
    aliasMax: 0,
    aliases: new Map(),
  };
  flows.set(stream, flow);
  c._parser.on("packet", (packet) => {
    if (packet.cmd === "connect") {
      const asked = (packet as { properties?: { topicAliasMaximum?: number } }).properties?.topicAliasMaximum ?? 0;
      flow.aliasMax = Math.min(asked, aliasesPerConnection);
      return;
    }
    const acked =
      packet.cmd === "puback" ||
      packet.cmd === "pubcomp" ||
      (packet.cmd === "pubrec" && (packet.reasonCode ?? 0) >= 0x80);
    if (!acked || packet.messageId === undefined || !flow.inflight.delete(packet.messageId)) return;
    while (flow.held.length > 0 && flow.inflight.size < flow.max() && !client.closed && !stream.destroyed) {
      const next = flow.held.shift()!;
      flow.heldBytes -= next.bytes;
      flow.inflight.add(next.packet.messageId);
      write(next.packet as never, stream, next.opts);
    }
  });
}

/**
 * allSubscriptionIdentifiers: a message matching several subscriptions of one client goes out once (aedes
 * delivers one copy) and then must carry the identifiers of all of them [MQTT-3.3.4-4]; aedes 2.0.0-beta.1
 * puts only the first one's. Asked only for a message that carries an identifier, and not for a retained
 * message sent because of one new subscription (that one's identifier alone, §3.3.4).
 */
export function allSubscriptionIdentifiers<
  P extends { topic: string; retain?: boolean; properties?: { subscriptionIdentifier?: number | number[] } },
>(client: Client, packet: P, matches: (filter: string, topic: string) => boolean): P {
  const first = packet.properties?.subscriptionIdentifier;
  if (client.version !== 5 || typeof first !== "number" || packet.retain) return packet;
  const subs = (client as unknown as { subscriptions: Record<string, { si?: number } | undefined> }).subscriptions;
  const ids = new Set<number>([first]);
  for (const filter in subs) {
    const si = subs[filter]?.si;
    if (si !== undefined && !ids.has(si) && matches(filter, packet.topic)) ids.add(si);
  }
  if (ids.size === 1) return packet;
  return { ...packet, properties: { ...packet.properties, subscriptionIdentifier: [...ids] } };
}

/** overQuota: the filters of a SUBSCRIBE refused for the subscription bounds (not for permissions). */
const overQuota = new WeakSet<object>();
/** subscribesOf: a connection's SUBSCRIBE packets by packet id, until their SUBACK is written */
const subscribesOf = new WeakMap<object, Map<number, { subscriptions: object[] }>>();

/** refuseOverQuota: `sub` (an entry of a SUBSCRIBE's subscriptions) is refused for want of room. */
export function refuseOverQuota(sub: object): void {
  overQuota.add(sub);
}

/** grantedSubs: the filters `authorizeSubscribe` allowed (see `isGranted`). */
const grantedSubs = new WeakSet<object>();

/** grantSubscription: `authorizeSubscribe` allowed `sub`. */
export function grantSubscription(sub: object): void {
  grantedSubs.add(sub);
}

/**
 * isGranted: the store keeps only filters `authorizeSubscribe` allowed. aedes hands a persistent session's
 * whole SUBSCRIBE to `addSubscriptions` as each filter is allowed, the first time before the later filters
 * were even asked about (lib/handlers/subscribe.js, `storeSubscriptions`), and refused ones with them.
 */
export function isGranted(sub: object): boolean {
  return grantedSubs.has(sub);
}

/**
 * subackQuotaCodes: a filter refused for the subscription bounds gets SUBACK 0x97 (Quota exceeded) from MQTT 5
 * clients' point of view; aedes answers every refusal of `authorizeSubscribe` with 0x87 (Not authorized, 0x80
 * at 3.1.1, which stays). The client's SUBSCRIBE packets are remembered by packet id as the parser hands them
 * over (aedes may dedupe their subscriptions in place: the packet, not the array, is kept), and the SUBACK is
 * rewritten as it is written (`installWriteHook`).
 */
export function subackQuotaCodes(client: Client): void {
  const c = client as unknown as ClientInternals;
  const conn = client.conn as object;
  c._parser.prependListener("packet", (packet) => {
    if (packet.cmd !== "subscribe" || packet.messageId === undefined) return;
    let mine = subscribesOf.get(conn);
    if (!mine) subscribesOf.set(conn, (mine = new Map()));
    if (mine.size < 1024) mine.set(packet.messageId, packet as unknown as { subscriptions: object[] });
  });
  installWriteHook();
}

/** quotaCodes: a SUBACK to an MQTT 5 client says 0x97 for each of its filters refused for want of room. */
function quotaCodes(p: object, stream: object, opts: { protocolVersion?: number } | undefined): void {
  const ack = p as { messageId?: number; granted?: number[] };
  if (ack.messageId === undefined || !Array.isArray(ack.granted)) return;
  const mine = subscribesOf.get(stream);
  const sub = mine?.get(ack.messageId);
  if (!sub) return;
  mine!.delete(ack.messageId);
  if (opts?.protocolVersion === 5)
    sub.subscriptions.forEach((s, i) => {
      if (overQuota.has(s) && ack.granted![i]! >= 0x80) ack.granted![i] = 0x97;
    });
}
