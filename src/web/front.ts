import type { Socket, TCPSocketListener } from "bun";
import type { AcceptPool, PendingSocket } from "../core/accept-pool.ts";

/**
 * The accept front of the HTTP(S) ports. Bun.serve has no accept hook: it holds a socket that has not
 * sent a request (or not finished a TLS handshake) for ~12 s whatever its `idleTimeout`, counted
 * nowhere, so idle sockets on the web ports could use every file descriptor of the process. The
 * front owns the public port (Bun.listen), counts each socket in the accept pool from accept, and
 * passes its bytes (TLS included, untouched) to Bun.serve on a loopback port once the client sends
 * some. The socket leaves the pool when Bun.serve sees its first request (`peer(port).entered()`),
 * and the request's address is the client's, looked up by the loopback connection's port.
 *
 * After that an HTTP connection is bounded by Bun.serve's idle timeout and by `maxConnections` per
 * port: a newcomer past it closes the connection that has been quiet (no bytes either way) longest.
 */
export interface AcceptFront {
  readonly port: number;
  /** the front connection behind a loopback connection of Bun.serve (by that connection's port) */
  peer(backendPort: number): FrontPeer | undefined;
  stop(): void;
}

export interface FrontPeer {
  readonly remote: string;
  /** a whole request arrived: the socket leaves the accept pool */
  entered(): void;
}

export interface AcceptFrontOptions {
  host: string;
  port: number;
  /** where Bun.serve listens (127.0.0.1) */
  backendPort: number;
  pool: AcceptPool;
  /** the pool's name for these sockets ("http", "https") */
  listener: string;
  /** connections past their first request, at most */
  maxConnections: number;
}

/** Pipe: one direction of a connection, with backpressure (the source pauses while bytes wait). */
class Pipe {
  #waiting: Uint8Array[] = [];
  /** end the target once everything is written */
  #ending = false;

  constructor(
    private readonly from: () => Socket<unknown> | undefined,
    private readonly to: () => Socket<unknown> | undefined,
  ) {}

  get idle(): boolean {
    return this.#waiting.length === 0;
  }

  /** write: bytes from the source; what the target cannot take now waits, and the source pauses */
  write(data: Uint8Array): void {
    const to = this.to();
    if (!to || this.#waiting.length) {
      this.#waiting.push(data.slice());
      if (to) this.from()?.pause();
      return;
    }
    const n = to.write(data);
    if (n < data.byteLength) {
      this.#waiting.push(data.slice(Math.max(0, n)));
      this.from()?.pause();
    }
  }

  /** drain: the target can take more (or has just opened) */
  drain(): void {
    const to = this.to();
    if (!to) return;
    while (this.#waiting.length) {
      const chunk = this.#waiting[0]!;
      const n = to.write(chunk);
      if (n < chunk.byteLength) {
        this.#waiting[0] = chunk.subarray(Math.max(0, n));
        return;
      }
      this.#waiting.shift();
    }
    if (this.#ending) to.end();
    else this.from()?.resume();
  }

  /** end: the source has closed; the target ends once what waits is written */
  end(): void {
    this.#ending = true;
    const to = this.to();
    if (to && !this.#waiting.length) to.end();
  }
}

interface Conn {
  remote: string;
  pending: PendingSocket;
  front: Socket<Conn>;
  backend?: Socket<Conn>;
  connecting: boolean;
  backendPort?: number;
  up: Pipe;
  down: Pipe;
  closed: boolean;
  /** it sent its first request (out of the pool, among the connections) */
  entered: boolean;
  /** the backend has closed; the front ends after the last bytes */
  finishing: boolean;
}

/** startAcceptFront: binds the public port; throws like Bun.serve when it cannot. */
export function startAcceptFront(opts: AcceptFrontOptions): AcceptFront {
  const { pool } = opts;
  const byBackendPort = new Map<number, Conn>();
  /** connections past their first request, least recently active first */
  const established = new Map<Conn, true>();

  const touch = (c: Conn) => {
    if (!c.entered) return;
    established.delete(c);
    established.set(c, true);
  };

  const close = (c: Conn) => {
    if (c.closed) return;
    c.closed = true;
    c.pending.leave();
    established.delete(c);
    if (c.backendPort !== undefined && byBackendPort.get(c.backendPort) === c) byBackendPort.delete(c.backendPort);
    c.front.terminate();
    c.backend?.terminate();
  };

  /** finish: the backend is done; the front ends once what waits for it is written (5 s at most) */
  const finish = (c: Conn) => {
    if (c.closed || c.finishing) return;
    c.finishing = true;
    c.down.end();
    setTimeout(() => close(c), 5_000).unref();
  };

  const connectBackend = (c: Conn) => {
    c.connecting = true;
    Bun.connect<Conn>({
      hostname: "127.0.0.1",
      port: opts.backendPort,
      data: c,
      socket: {
        open(b) {
          if (c.closed) return b.terminate();
          c.backend = b;
          c.backendPort = b.localPort;
          byBackendPort.set(b.localPort, c);
          c.up.drain();
        },
        data(_b, data) {
          touch(c);
          c.down.write(data);
        },
        drain: () => c.up.drain(),
        // Bun.serve closed it (idle timeout, `Connection: close`): the client gets what was sent, then
        // a FIN, not a reset that could cut the response's tail; its own close ends the rest.
        end: () => finish(c),
        close: () => finish(c),
        error: () => close(c),
        connectError: () => close(c),
      },
    }).catch(() => close(c));
  };

  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: opts.host,
    port: opts.port,
    socket: {
      open(front) {
        const remote = front.remoteAddress || "unknown";
        const pending = pool.admit(opts.listener, remote, () => close(c));
        const c: Conn = {
          remote,
          pending: pending ?? { spoke() {}, leave() {} },
          front,
          connecting: false,
          up: new Pipe(
            () => c.front,
            () => c.backend,
          ),
          down: new Pipe(
            () => c.backend,
            () => c.front,
          ),
          closed: false,
          entered: false,
          finishing: false,
        };
        front.data = c;
        if (!pending) close(c);
      },
      data(front, data) {
        const c = front.data;
        if (c.closed) return;
        touch(c);
        c.up.write(data);
        if (!c.connecting) connectBackend(c);
      },
      drain: (front) => front.data.down.drain(),
      end: (front) => front.data.up.end(),
      close: (front) => close(front.data),
      error: (front) => close(front.data),
    },
  });

  return {
    port: listener.port,
    peer(backendPort) {
      const c = byBackendPort.get(backendPort);
      if (!c) return undefined;
      return {
        remote: c.remote,
        entered() {
          if (c.entered || c.closed) return;
          c.entered = true;
          c.pending.leave();
          // past the cap, the connection quiet the longest makes room (it reconnects if it needs to)
          if (established.size >= opts.maxConnections) {
            const quiet = established.keys().next().value;
            if (quiet) close(quiet);
          }
          established.set(c, true);
        },
      };
    },
    stop() {
      listener.stop(true);
      for (const c of [...byBackendPort.values(), ...established.keys()]) close(c);
    },
  };
}
