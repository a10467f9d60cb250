import { rootCertificates } from "node:tls";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../lib/logger.ts";
import type { UplinkConfig } from "./store.ts";
import { tapPubacks } from "./wire.ts";

/** Backoff: the first retry waits up to `baseMs`, each next one up to twice as long, at most `maxMs`. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** ConnectionLimits: the reconnects' backoff, and the largest packet taken from the upstream. */
export interface ConnectionLimits {
  backoff: Backoff;
  maxPacket: number;
}

export interface ConnectionEvents {
  /**
   * a CONNACK from `url`: `client` is the live connection until `lost`; `receiveMaximum` and
   * `maximumPacketSize`: the upstream's (MQTT 5 CONNACK), if it set them
   */
  connected(
    client: MqttClient,
    url: string,
    sessionPresent: boolean,
    receiveMaximum?: number,
    maximumPacketSize?: number,
  ): void;
  /**
   * PUBACKs read off the socket before mqtt.js (pairs of packet identifier and reason code, see
   * `tapPubacks`): true if every one was the uplink's and is settled, false to leave them all to mqtt.js
   */
  acks(acks: number[]): boolean;
  /** a PUBACK mqtt.js parsed, once `unusable` let it pass (the uplink's own sends: mqtt.js has no record of them) */
  puback(messageId: number, reasonCode: number | undefined, reasonString: string | undefined): void;
  /** the live connection ended (`connected` was called before) */
  lost(reason: string): void;
  /**
   * an attempt failed or the connection reported an error (never holds a password); `lasting`: the broker
   * broke the protocol (a malformed or oversized packet, one that cannot be taken), news that should
   * outlive the reconnect it caused, where a refused or lost connection is over once the next one is up
   */
  error(message: string, lasting?: boolean): void;
}

/** statusTopic: the retained birth (`online`) and will (`offline`) of this appliance upstream. */
export const statusTopic = (remotePrefix: string) => `${remotePrefix}$gatehouse/status`;

/** delayFor: exponential backoff with full jitter: uniformly random in [0, min(max, base * 2^attempt)]. */
export function delayFor(attempt: number, b: Backoff, random = Math.random): number {
  return Math.floor(random() * Math.min(b.maxMs, b.baseMs * 2 ** Math.min(attempt, 30)));
}

/**
 * InTurnSkippingTaken: packet identifiers handed out in turn, as mqtt.js' default does, skipping one still
 * unacknowledged (the default hands it out again after 65 535 others: with a large window, one message's
 * PUBACK went to another and it stayed queued for ever). mqtt.js' own unique provider keeps interval trees:
 * measured 4 % off the uplink's throughput; this is a bitmap. Null when all 65 535 are taken (mqtt.js waits).
 */
export class InTurnSkippingTaken {
  #taken = new Uint8Array(65_536);
  #count = 0;
  #next = 1;
  #last: number | null = null;

  allocate(): number | null {
    if (this.#count >= 65_535) return null;
    let id = this.#next;
    while (this.#taken[id]) id = id === 65_535 ? 1 : id + 1;
    this.#taken[id] = 1;
    this.#count++;
    this.#next = id === 65_535 ? 1 : id + 1;
    this.#last = id;
    return id;
  }

  getLastAllocated(): number | null {
    return this.#last;
  }

  register(id: number): boolean {
    if (id < 1 || id > 65_535 || this.#taken[id]) return false;
    this.#taken[id] = 1;
    this.#count++;
    return true;
  }

  deallocate(id: number): void {
    if (id < 1 || id > 65_535 || !this.#taken[id]) return;
    this.#taken[id] = 0;
    this.#count--;
  }

  clear(): void {
    this.#taken.fill(0);
    this.#count = 0;
  }
}

/**
 * unusable: why a packet from the upstream cannot be taken, if it cannot: a property given twice (MQTT 5
 * §2.2.2.2: a protocol error; only User Property and Subscription Identifier may repeat), a Receive Maximum
 * of 0 (§3.2.2.3.3), a Maximum QoS of 0 when the uplink sends QoS 1 (it would have to drop its guarantee), or
 * an acknowledgement too short to hold a packet identifier (mqtt-packet reads it as -1 and mqtt.js ignores it)
 * or, in MQTT 3.1.1, of any other length than 2 (mqtt-packet takes it: its extra bytes are someone else's).
 */
export function unusable(packet: { cmd: string }, qos: number, protocol: 4 | 5): string | undefined {
  // the uplink sends and subscribes at QoS 1 at most: a QoS 2 step from the broker is a protocol error (a
  // PUBREC for a QoS 1 PUBLISH held its window slot for ever, found from outside)
  if (packet.cmd === "pubrec" || packet.cmd === "pubrel" || packet.cmd === "pubcomp")
    return `the broker sent ${packet.cmd.toUpperCase()}, a QoS 2 step, where only QoS 1 was used (a protocol error)`;
  if (packet.cmd === "puback" || packet.cmd === "suback" || packet.cmd === "unsuback") {
    const id = (packet as { messageId?: number }).messageId;
    if (typeof id !== "number" || id < 1 || id > 65_535)
      return `the broker sent a ${packet.cmd.toUpperCase()} without a packet identifier (a malformed packet)`;
    const length = (packet as { length?: number }).length;
    if (protocol === 4 && packet.cmd !== "suback" && length !== 2)
      return `the broker sent a ${packet.cmd.toUpperCase()} of ${length} bytes where MQTT 3.1.1 has 2 (a malformed packet)`;
  }
  const props = (packet as { properties?: Record<string, unknown> }).properties;
  if (!props) return undefined;
  for (const [k, v] of Object.entries(props))
    if (Array.isArray(v) && k !== "subscriptionIdentifier")
      return `the broker sent ${k} more than once in its ${packet.cmd.toUpperCase()} (a protocol error): refused`;
  if (packet.cmd !== "connack") return undefined;
  if (props.receiveMaximum === 0) return "the broker's Receive Maximum is 0 (a protocol error): refused";
  if (props.maximumQoS === 0 && qos > 0)
    return "the broker takes QoS 0 only (Maximum QoS 0): set the uplink's QoS to 0, or allow QoS 1 there";
  return undefined;
}

/**
 * UplinkConnection: one MQTT client session upstream, over the cluster's nodes. It connects to the first
 * URL; when a connection fails or is lost it tries the next URL after a delay with exponential backoff
 * and full jitter (capped), so a thousand appliances coming back after a WAN outage spread their
 * reconnects instead of hitting the cluster in lockstep. Each attempt is a fresh mqtt.js client with the
 * same client id and a persistent session (clean session off; MQTT 5: a session expiry of a week), a
 * retained will `offline` on `<remote-prefix>$gatehouse/status`; mqtt.js' own reconnect is off.
 */
export class UplinkConnection {
  #client: MqttClient | undefined;
  #live = false;
  #index = 0;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = true;

  constructor(
    private readonly cfg: UplinkConfig,
    private readonly limits: ConnectionLimits,
    private readonly log: Logger,
    private readonly events: ConnectionEvents,
  ) {}

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#index = 0;
    this.#attempt = 0;
    this.#connect();
  }

  #options(): IClientOptions {
    const c = this.cfg;
    const tls: IClientOptions = {};
    // the system's CAs plus the uplink's own (Node's `ca` alone would replace the system's)
    if (c.ca) tls.ca = [...rootCertificates, c.ca];
    if (c.clientCert && c.clientKey) {
      tls.cert = c.clientCert;
      tls.key = c.clientKey;
    }
    return {
      ...tls,
      rejectUnauthorized: true,
      clientId: c.clientId,
      protocolVersion: c.protocol,
      clean: false,
      // MQTT 5: the broker is told the largest packet it may send (a larger one closes the connection anyway)
      ...(c.protocol === 5
        ? { properties: { sessionExpiryInterval: 7 * 86_400, maximumPacketSize: this.limits.maxPacket } }
        : {}),
      username: c.username ?? undefined,
      password: c.password,
      keepalive: 30,
      // a PINGREQ every keepalive, whatever else flows: mqtt.js would otherwise restart a timer for every
      // packet received (a PUBACK per message forwarded)
      reschedulePings: false,
      connectTimeout: 10_000,
      reconnectPeriod: 0, // ours: the next node, with backoff and jitter
      queueQoSZero: false,
      log: () => {}, // mqtt.js calls its debug logger several times per packet: ~4% of a busy uplink's CPU
      // a packet identifier is never reused while unacknowledged (the default hands them out in turn,
      // whatever is still in flight: with a large window one message's acknowledgement went to another)
      messageIdProvider: new InTurnSkippingTaken(),
      will: { topic: statusTopic(c.remotePrefix), payload: Buffer.from("offline"), qos: 1, retain: true },
    };
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const url = this.cfg.urls[this.#index % this.cfg.urls.length]!;
    let client: MqttClient;
    try {
      client = mqtt.connect({ ...brokerTarget(url), ...this.#options() });
    } catch (err) {
      this.events.error(`${url}: ${(err as Error).message}`);
      this.#retry();
      return;
    }
    // Nagle's algorithm holds small PUBLISHes back while earlier ones wait for their TCP ACK: off, as
    // brokers set it for their clients (the in-flight window already batches writes)
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    this.#client = client;
    let said = false; // this attempt reported why it failed
    let broken = false; // mqtt.js reported an error on this attempt: it is being closed
    // what the upstream sends is looked at before mqtt.js buffers it (see tapPubacks)
    const take = (acks: number[]) => this.#client === client && this.#live && this.events.acks(acks);
    tapPubacks(client.stream, this.cfg.protocol, this.limits.maxPacket, take, (length) => {
      said = true;
      this.events.error(
        `${url}: the broker sent a packet of ${length} bytes, more than --uplink-max-packet (${this.limits.maxPacket}): connection closed`,
        true,
      );
      setImmediate(() => client.end(true));
    });
    let refused = false; // this attempt was refused here (a packet mqtt.js would trip on)
    let liveSince = 0;
    // Checked before mqtt.js handles a packet: an upstream can lie, and a property given twice reached
    // mqtt.js as an array and threw out of its handler: the whole appliance stopped, at every restart
    // (attack5 F5). A CONNACK that cannot be taken is refused (treated as the broker's refusal).
    client.on("packetreceive", (packet) => {
      if (this.#client !== client) return;
      const why = unusable(packet, this.cfg.qos, this.cfg.protocol);
      if (!why) {
        if (packet.cmd === "puback")
          this.events.puback(packet.messageId!, packet.reasonCode, packet.properties?.reasonString);
        return;
      }
      const p = packet as { cmd: string; reasonCode?: number; properties?: Record<string, unknown> };
      for (const [k, v] of Object.entries(p.properties ?? {})) if (Array.isArray(v)) delete p.properties![k];
      said = true;
      this.events.error(`${url}: ${why}`, true);
      if (p.cmd === "connack") {
        refused = true;
        p.reasonCode = 0x81; // mqtt.js closes the connection and says "refused"; ours said why
      } else setImmediate(() => client.end(true));
    });
    let goodbye = ""; // an MQTT 5 DISCONNECT's reason, said with the close
    client.on("connect", (connack) => {
      // a CONNACK read together with a malformed packet: the connection is closing, and the error stays said
      if (this.#client !== client || broken) return;
      this.#live = true;
      liveSince = Date.now();
      try {
        this.events.connected(
          client,
          url,
          connack.sessionPresent,
          connack.properties?.receiveMaximum,
          connack.properties?.maximumPacketSize,
        );
      } catch (err) {
        // one uplink's trouble stays its own: the connection goes, the appliance does not
        this.log.error("uplink failed on connecting", { uplink: this.cfg.name, error: (err as Error).message });
        this.events.error(`${url}: ${(err as Error).message}`);
        client.end(true);
      }
    });
    client.on("disconnect", (packet) => {
      if (this.#client !== client) return;
      const code = packet.reasonCode ?? 0;
      const why = packet.properties?.reasonString;
      goodbye = `: the broker disconnected it, reason 0x${code.toString(16).padStart(2, "0")}${why ? ` (${String(why).slice(0, 200)})` : ""}`;
      this.events.error(`${url}${goodbye}`);
    });
    client.on("error", (err) => {
      if (this.#client !== client || refused) return;
      said = true;
      broken = true;
      // a socket's or a refusal's error has a code; mqtt-packet's (a malformed packet) has none
      const code = (err as { code?: unknown }).code;
      this.events.error(`${url}: ${err.message}`, code === undefined && err.message !== "Keepalive timeout");
      // mqtt.js reports a malformed packet (reserved flag bits, a bad length) and reads on: [MQTT-2.2.2-2]
      // wants the connection closed, and what was in flight goes again on the next (found from outside: a
      // broker whose every PUBACK was malformed kept the uplink connected and forwarding nothing for ever)
      setImmediate(() => client.end(true));
    });
    client.on("close", () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      client.removeAllListeners("connect");
      client.end(true);
      const wasLive = this.#live;
      this.#live = false;
      // the backoff starts over only after a connection that lasted: one closed right after its CONNACK (a
      // broker refusing what it was sent) is retried ever more slowly, not twice a second (attack5 F4)
      if (wasLive && Date.now() - liveSince >= 10_000) this.#attempt = 0;
      if (wasLive) this.events.lost(`connection to ${url} closed${goodbye}`);
      else if (!said) this.events.error(`${url}: the connection closed before the broker accepted it (CONNACK)`);
      this.#retry();
    });
  }

  /** retry: the next node, after the backoff's jittered delay. */
  #retry(): void {
    if (this.#stopped) return;
    this.#index = (this.#index + 1) % this.cfg.urls.length;
    const delay = delayFor(this.#attempt++, this.limits.backoff);
    this.log.debug("uplink reconnect scheduled", { uplink: this.cfg.name, next: this.cfg.urls[this.#index], delay });
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  /**
   * stop: a clean goodbye: the retained status `offline` (a DISCONNECT discards the will), then the
   * DISCONNECT; bounded, so a dead upstream cannot hold the appliance's stop.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = undefined;
    const wasLive = this.#live;
    this.#live = false;
    if (!client) return;
    client.removeAllListeners("close");
    client.removeAllListeners("connect");
    client.on("error", () => {});
    if (wasLive && client.connected) {
      const bye = new Promise<void>((resolve) =>
        client.publish(statusTopic(this.cfg.remotePrefix), "offline", { qos: 1, retain: true }, () => resolve()),
      );
      await Promise.race([bye, Bun.sleep(2000)]);
      await Promise.race([new Promise<void>((resolve) => client.end(false, {}, () => resolve())), Bun.sleep(2000)]);
    }
    client.end(true);
    if (wasLive) this.events.lost("stopped");
  }
}

/**
 * brokerTarget: a broker's URL as mqtt.js' connection options (what it reads of the URL itself: protocol,
 * host, port, and the path of a WebSocket), parsed with the WHATWG URL parser. Given the URL as a string,
 * mqtt.js parses it with Node's deprecated `url.parse`: every start with an uplink wrote a DEP0169 warning to
 * stderr, outside the log's format (found from outside). The store has refused a URL with a user name in it.
 */
export function brokerTarget(url: string): IClientOptions {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, "") as NonNullable<IClientOptions["protocol"]>;
  return {
    protocol,
    host: u.hostname.replace(/^\[(.*)\]$/, "$1"), // an IPv6 address without its brackets, as url.parse gave it
    ...(u.port ? { port: Number(u.port) } : {}),
    // a WebSocket goes to the URL as given: mqtt.js would build it again from the host without the brackets of
    // an IPv6 address (found from outside: ws://[::1]:PORT/mqtt never connected, "Invalid URL: ws://::1:PORT")
    ...(protocol.startsWith("ws") ? { path: `${u.pathname}${u.search}`, transformWsUrl: () => u.href } : {}),
  };
}
