import type { Socket, TCPSocketListener } from "bun";
import type { AcceptPool, PendingSocket } from "../core/accept-pool.ts";

/**
 * The accept front of the HTTP(S) ports. Bun.serve has no accept hook: it holds a socket that has not
 * sent a request (or not finished a TLS handshake) for ~12 s whatever its `idleTimeout`, counted
 * nowhere, so idle sockets on the web ports could use every file descriptor of the process. The
 * front owns the public port (Bun.listen), counts each socket in the accept pool from accept, and
 * passes its bytes (TLS included, untouched) to Bun.serve on a loopback port once the client sends
 * some. The socket leaves the pool when Bun.serve sees its first request (`peer(...).entered()`),
 * and the request's address is the client's, looked up by the loopback connection's source address
 * and port: the kernel never gives two live connections to one destination the same source address
 * and port, so only the front's own connection matches; any other connection to Bun.serve's port (a
 * local process, from 127.0.0.2 or from another port) matches nothing and is refused (403).
 *
 * After that an HTTP connection is bounded by Bun.serve's idle timeout and by `maxConnections` per
 * port. A newcomer past it closes one, chosen per address: the address holding the most connections
 * gives one up, its quietest (no bytes either way for longest). A connection with a long-lived
 * request in flight (a long poll, /events, a logged-in WebSocket) is never chosen while an ordinary
 * one exists: a stranger polling /healthz on many connections cannot cut a dashboard's stream.
 */
export interface AcceptFront {
  readonly port: number;
  /** the front connection behind a loopback connection of Bun.serve (by that connection's source address and port) */
  peer(address: string, port: number): FrontPeer | undefined;
  stop(): void;
}

export interface FrontPeer {
  readonly remote: string;
  /** a whole request arrived: the socket leaves the accept pool; the one before it on this connection is over */
  entered(): void;
  /**
   * longLived: the request in flight answers late on purpose (a long poll, an event stream) or the
   * connection became a logged-in WebSocket (true); or that answer is ready (false)
   */
  longLived(on: boolean): void;
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
  /** the backend connection's source, `address:port` (what Bun.serve sees as its peer) */
  backendPeer?: string;
  /** when bytes last went either way */
  lastActive: number;
  /** a long-lived request is in flight (see FrontPeer.longLived) */
  longLived: boolean;
  up: Pipe;
  down: Pipe;
  closed: boolean;
  /** it sent its first request (out of the pool, among the connections) */
  entered: boolean;
  /** the backend has closed; the front ends after the last bytes */
  finishing: boolean;
}

/** AddressConns: one address's connections past their first request, each kind least recently active first. */
interface AddressConns {
  ordinary: Map<Conn, true>;
  longLived: Map<Conn, true>;
}

/**
 * victimAmong: the connection to close past the cap: among ordinary connections if there are any
 * (else long-lived ones), the quietest of the address holding the most of them (ties: the address
 * whose candidate has been quiet longest). Long-lived connections do not count while ordinary ones are
 * chosen from: a dashboard's address with two streams open is not "the address holding the most"
 * against strangers holding one ordinary connection each.
 */
function victimAmong(byAddress: Map<string, AddressConns>, anyOrdinary: boolean): Conn | undefined {
  let victim: Conn | undefined;
  let most = 0;
  for (const conns of byAddress.values()) {
    const candidates = anyOrdinary ? conns.ordinary : conns.longLived;
    const quietest = candidates.keys().next().value;
    if (!quietest) continue;
    const held = candidates.size;
    if (held > most || (held === most && victim && quietest.lastActive < victim.lastActive)) {
      victim = quietest;
      most = held;
    }
  }
  return victim;
}

/** startAcceptFront: binds the public port; throws like Bun.serve when it cannot. */
export function startAcceptFront(opts: AcceptFrontOptions): AcceptFront {
  const { pool } = opts;
  /** front connections by their backend connection's source (`address:port`) */
  const byBackendPeer = new Map<string, Conn>();
  /** connections past their first request, by client address */
  const byAddress = new Map<string, AddressConns>();
  let established = 0;
  let ordinary = 0;

  const kindOf = (c: Conn) => {
    const conns = byAddress.get(c.remote)!;
    return c.longLived ? conns.longLived : conns.ordinary;
  };

  const touch = (c: Conn) => {
    c.lastActive = performance.now();
    if (!c.entered || c.closed) return;
    const kind = kindOf(c);
    kind.delete(c);
    kind.set(c, true);
  };

  /** forget: the connection no longer counts among those past their first request */
  const forget = (c: Conn) => {
    if (!c.entered) return;
    const conns = byAddress.get(c.remote);
    if (!conns) return;
    if (conns.ordinary.delete(c)) ordinary--;
    conns.longLived.delete(c);
    established--;
    if (conns.ordinary.size === 0 && conns.longLived.size === 0) byAddress.delete(c.remote);
  };

  const close = (c: Conn) => {
    if (c.closed) return;
    forget(c);
    c.closed = true;
    c.pending.leave();
    if (c.backendPeer !== undefined && byBackendPeer.get(c.backendPeer) === c) byBackendPeer.delete(c.backendPeer);
    c.front.terminate();
    c.backend?.terminate();
  };

  /**
   * mark: the connection's kind changes (ordinary <-> long-lived). It counts as active now: a long
   * poll that has just been answered was silent for its whole wait, and its answer is being written.
   */
  const mark = (c: Conn, longLived: boolean) => {
    if (c.closed || c.longLived === longLived) return;
    c.lastActive = performance.now();
    if (!c.entered) return void (c.longLived = longLived);
    const conns = byAddress.get(c.remote)!;
    (c.longLived ? conns.longLived : conns.ordinary).delete(c);
    ordinary += longLived ? -1 : 1;
    c.longLived = longLived;
    (longLived ? conns.longLived : conns.ordinary).set(c, true);
  };

  /** enter: the connection's first request; past the cap another makes room (it reconnects if it needs to) */
  const enter = (c: Conn) => {
    if (established >= opts.maxConnections) {
      const victim = victimAmong(byAddress, ordinary > 0);
      if (victim) close(victim);
    }
    c.entered = true;
    let conns = byAddress.get(c.remote);
    if (!conns) byAddress.set(c.remote, (conns = { ordinary: new Map(), longLived: new Map() }));
    (c.longLived ? conns.longLived : conns.ordinary).set(c, true);
    if (!c.longLived) ordinary++;
    established++;
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
          c.backendPeer = `${b.localAddress}:${b.localPort}`;
          byBackendPeer.set(c.backendPeer, c);
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
          pending,
          front,
          connecting: false,
          lastActive: performance.now(),
          longLived: false,
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
    peer(address, port) {
      const c = byBackendPeer.get(`${address}:${port}`);
      if (!c || c.closed) return undefined;
      return {
        remote: c.remote,
        entered() {
          if (c.closed) return;
          if (c.entered) return mark(c, false); // the request before this one on the connection is over
          c.pending.leave();
          enter(c);
        },
        longLived: (on) => mark(c, on),
      };
    },
    stop() {
      listener.stop(true);
      const all = [...byBackendPeer.values()];
      for (const conns of byAddress.values()) all.push(...conns.ordinary.keys(), ...conns.longLived.keys());
      for (const c of all) close(c);
    },
  };
}
