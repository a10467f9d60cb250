export interface TopicMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/**
 * messageProperties: the MQTT 5 PUBLISH properties that belong to the message itself (§3.3.2.3) and travel
 * with it to every subscriber and across a hop; a Topic Alias and a Subscription Identifier are one
 * connection's own and never do.
 */
export const messageProperties = [
  "payloadFormatIndicator",
  "messageExpiryInterval",
  "contentType",
  "responseTopic",
  "correlationData",
  "userProperties",
] as const;

/**
 * PublishedMessage: a message as its publisher handed it in, before the broker routes it: its QoS,
 * and its MQTT 5 PUBLISH properties (message expiry, content type, user properties, ...) if any.
 */
export interface PublishedMessage extends TopicMessage {
  qos: 0 | 1 | 2;
  properties?: Record<string, unknown>;
}

/**
 * Origin: where a message came in: a listener's type (`mqtt`, `http`, `opcua`, `vrpc`), `core` for the
 * appliance's own publishes, or `connector:<name>` for what a connector brought down from elsewhere (an
 * uplink never sends such a message back up: no loops).
 */
export type Origin = string;

/** isFromConnector: the message came down through a connector (an uplink's subscription). */
export const isFromConnector = (origin: Origin) => origin.startsWith("connector:");

/**
 * DurableTap: a part that must hold a message before its publisher is acknowledged (an uplink's on-disk
 * outbox). It takes the message synchronously, in the order publishes arrive, and returns a promise that
 * resolves once the message is durable, or undefined when it holds nothing for which a publisher must
 * wait. `answered`: whether the publisher waits for that promise (an MQTT QoS 1/2 publish, every `publish`
 * through the bus); only then may it reject, with a BusNotStoredError: the tap could not make the message
 * durable (a full disk), so the publisher is told no (MQTT 5 PUBACK 0x97, HTTP 503) and sends it again,
 * instead of a yes for a message that was lost. One nobody waits for is counted as lost by the tap.
 */
export type DurableTap = (message: PublishedMessage, origin: Origin, answered: boolean) => Promise<void> | undefined;

/**
 * PublishedFor: the integration a message is published for (an HTTP integration's post): the broker charges
 * what it stores for it to that integration's share of its store, and refuses it past that share.
 */
export interface PublishedFor {
  id: number;
  /** the integration's creation time: with its id, who it is */
  created: number;
}

/** BusMessage: what is handed to the bus to publish. */
export type BusMessage = TopicMessage & { qos?: 0 | 1; by?: PublishedFor };

/** RetainedMessage: a retained value as the bus reads it back. */
export interface RetainedMessage {
  topic: string;
  payload: Buffer;
  at?: number;
}

export interface BusProvider {
  /**
   * publish as the broker itself; resolves once what it needs stored (a retained value, a message queued
   * for persistent sessions) is on disk, rejects with BusNotStoredError if it could not be
   */
  publish(message: BusMessage): Promise<void>;
  /** retained messages matching a filter, now, each with the time it was stored if the provider keeps it (ms) */
  retained(filter: string): AsyncIterable<RetainedMessage>;
  /** the largest payload the broker takes from its own clients; the same holds for every listener */
  readonly maxPayloadBytes: number;
}

/** PayloadTooLargeError: larger than the broker accepts from its own clients (`--mqtt-max-packet`). */
export class PayloadTooLargeError extends Error {
  override name = "PayloadTooLargeError";
  constructor(readonly limit: number) {
    super(`payload larger than ${limit} bytes`);
  }
}

/**
 * BusNotStoredError: the broker could not make a message durable (its store refused the write: a full disk,
 * an I/O error). Nothing was acknowledged; the caller may try again.
 */
export class BusNotStoredError extends Error {
  override name = "BusNotStoredError";
  /**
   * `full`: for want of room (a full disk, a share of a store): MQTT 5 says 0x97 (quota exceeded), not 0x80.
   * `what`: which store could not take it (the broker's, an uplink's outbox).
   */
  constructor(
    readonly reason: string,
    readonly full = false,
    what = "the broker",
  ) {
    super(`${what} could not store the message: ${reason}`);
  }
}

export class BusUnavailableError extends Error {
  override name = "BusUnavailableError";
  constructor() {
    super("the MQTT broker is not running");
  }
}

/**
 * TopicBus: the topic space MQTT provides and the other listeners (OPC UA Topics, HTTP data) use, in
 * process. The core owns it so that no adapter imports another: the MQTT listener attaches a
 * provider while it runs and reports every routed message; consumers subscribe here whether or not
 * the provider is up yet. Callers check permissions (core/permissions.ts) before they publish.
 *
 * Durable taps: every way a message comes in acknowledges its publisher only after `tap` has settled:
 * `publish` (HTTP's 202, an OPC UA write's answer, the appliance's own) awaits it itself, and the MQTT
 * broker awaits it in its authorizePublish step, before aedes writes the PUBACK. So a part that must
 * not lose what a device was told is safe (an uplink's outbox) holds it before the device hears yes.
 */
export class TopicBus {
  #provider: BusProvider | undefined;
  #handlers = new Set<(m: TopicMessage) => void>();
  #taps: DurableTap[] = [];

  /** attach: the broker is up (one provider at a time); returns the detach function. */
  attach(provider: BusProvider): () => void {
    this.#provider = provider;
    return () => {
      if (this.#provider === provider) this.#provider = undefined;
    };
  }

  get available(): boolean {
    return this.#provider !== undefined;
  }

  /** maxPayloadBytes: what a message published through the bus (OPC UA write, HTTP post) may carry. */
  get maxPayloadBytes(): number {
    return this.#provider?.maxPayloadBytes ?? 1024 * 1024;
  }

  /** routed: the provider reports a message it delivered (never `$` topics, never refused ones). */
  routed(message: TopicMessage): void {
    for (const h of this.#handlers) h(message);
  }

  /** onMessage: every routed message from now on; returns the unsubscribe function. */
  onMessage(handler: (m: TopicMessage) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  get listening(): boolean {
    return this.#handlers.size > 0;
  }

  /** addTap: a durable tap from now on; returns the function that removes it. */
  addTap(tap: DurableTap): () => void {
    this.#taps = [...this.#taps, tap];
    return () => {
      this.#taps = this.#taps.filter((t) => t !== tap);
    };
  }

  /**
   * tap: hands a message that was accepted for routing to every durable tap; the publisher's
   * acknowledgement waits for the promise, if any (undefined: nothing to wait for, the common case).
   * `answered`: the publisher waits for it (see DurableTap); then it may reject with a BusNotStoredError.
   */
  tap(message: PublishedMessage, origin: Origin, answered = true): Promise<void> | undefined {
    const taps = this.#taps;
    if (taps.length === 0) return undefined;
    if (taps.length === 1) return taps[0]!(message, origin, answered);
    const waits = taps.map((t) => t(message, origin, answered)).filter((w) => w !== undefined);
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
  }

  /**
   * publish: as the broker itself, on behalf of `origin` (HTTP, OPC UA, the appliance, a connector);
   * resolves once the message is held by every durable tap and handed to the broker.
   */
  publish(message: BusMessage, origin: Origin = "core"): Promise<void> {
    const provider = this.#provider;
    if (!provider) return Promise.reject(new BusUnavailableError());
    if (message.payload.length > provider.maxPayloadBytes)
      return Promise.reject(new PayloadTooLargeError(provider.maxPayloadBytes));
    const held = this.tap({ ...message, qos: message.qos ?? 0 }, origin);
    return held ? held.then(() => provider.publish(message)) : provider.publish(message);
  }

  async *retained(filter = "#"): AsyncIterable<RetainedMessage> {
    if (!this.#provider) return;
    yield* this.#provider.retained(filter);
  }
}
