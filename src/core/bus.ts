export interface TopicMessage {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

export interface BusProvider {
  /**
   * publish as the broker itself; resolves once what it needs stored (a retained value, a message queued
   * for persistent sessions) is on disk, rejects with BusNotStoredError if it could not be
   */
  publish(message: TopicMessage & { qos?: 0 | 1 }): Promise<void>;
  /** retained messages matching a filter, now */
  retained(filter: string): AsyncIterable<{ topic: string; payload: Buffer }>;
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
  constructor(readonly reason: string) {
    super(`the broker could not store the message: ${reason}`);
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
 */
export class TopicBus {
  #provider: BusProvider | undefined;
  #handlers = new Set<(m: TopicMessage) => void>();

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

  publish(message: TopicMessage & { qos?: 0 | 1 }): Promise<void> {
    if (!this.#provider) return Promise.reject(new BusUnavailableError());
    if (message.payload.length > this.#provider.maxPayloadBytes)
      return Promise.reject(new PayloadTooLargeError(this.#provider.maxPayloadBytes));
    return this.#provider.publish(message);
  }

  async *retained(filter = "#"): AsyncIterable<{ topic: string; payload: Buffer }> {
    if (!this.#provider) return;
    yield* this.#provider.retained(filter);
  }
}
