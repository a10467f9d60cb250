/**
 * Listener: the contract every protocol adapter satisfies (Caddy's App). An adapter translates its
 * library's callbacks into core calls and nothing more.
 */
export interface Listener {
  /** protocol name for logs: "http", "mqtt", "opcua" */
  readonly name: string;
  /** bind sockets; throw to abort boot */
  start(): Promise<void>;
  /** idempotent; safe after a failed start */
  stop(): Promise<void>;
  /** where it listens, with the real port once started (port 0 picks one) */
  address(): { host: string; port: number } | undefined;
}
