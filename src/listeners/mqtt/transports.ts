import type { Aedes } from "aedes";
import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import type { AcceptPool, PendingSocket } from "../../core/accept-pool.ts";
import type { WsPeer } from "../../lib/http.ts";
import type { TlsSource } from "../../lib/tls.ts";
import {
  assertAedesShape,
  handleOnFirstBytes,
  limitPacketSize,
  refuseRepeatedProperties,
  parserOf,
  refuseUnknownProtocolLevels,
} from "./aedes-internals.ts";
import type { MqttState } from "./state.ts";

/** WsStream: a WebSocket connection as the byte stream aedes reads MQTT from (one frame = bytes). */
export class WsStream extends Duplex {
  readonly remoteAddress: string;
  constructor(private readonly peer: WsPeer) {
    super();
    this.remoteAddress = peer.remote;
  }
  /** loggedIn: the client's login succeeded; its connection is long-lived from now on (see WsPeer) */
  loggedIn(): void {
    this.peer.loggedIn?.();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.peer.send(chunk);
    done();
  }
  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.peer.close();
    done(err);
  }
}

export interface TransportOptions {
  host: string;
  port: number;
  /** MQTT over TLS on this port (null/absent: none) */
  tlsPort?: number | null;
  maxPacketBytes: number;
  /** largest CONNECT (the first packet, before login); the packet limit if smaller */
  maxConnectBytes: number;
}

/**
 * startTransports: MQTT over TCP, TLS and WebSockets into one broker, each socket counted in the accept
 * pool from accept (a TLS socket at its raw `connection`, before the handshake) until it has logged in.
 */
export async function startTransports(
  b: Aedes,
  s: MqttState,
  pool: AcceptPool,
  tls: TlsSource | undefined,
  opts: TransportOptions,
) {
  const maxPacket = opts.maxPacketBytes;
  const sockets = new Set<Socket>();
  const detach: (() => void)[] = [];
  let tlsServer: TlsServer | undefined;
  let checked = false;
  /**
   * admit: a new socket enters the accept pool (a full pool makes room first). TLS sockets enter at
   * the raw `connection`, before the handshake.
   */
  const admit = (socket: Socket, listener: string): PendingSocket => {
    socket.on("error", () => {});
    const pending = pool.admit(listener, socket.remoteAddress ?? "unknown", () => socket.destroy());
    s.pendingOf.set(socket, pending);
    // tracked from accept, so a stop also ends a TLS handshake in progress
    sockets.add(socket);
    socket.once("close", () => (pending.leave(), sockets.delete(socket)));
    return pending;
  };
  /** accept: one admitted connection, over TCP, TLS or a WebSocket: the same limits, hooks and kicks. */
  const accept = (socket: Socket) => {
    // an aedes client only for a socket that sends something: a silent one stays cheap
    handleOnFirstBytes(b, socket, (client) => {
      if (!checked) {
        assertAedesShape(b, parserOf(client));
        checked = true;
      }
      limitPacketSize(client, maxPacket, opts.maxConnectBytes);
      refuseRepeatedProperties(client);
      refuseUnknownProtocolLevels(client, () => {
        s.log.info("mqtt protocol version not supported", { remote: socket.remoteAddress });
        s.core.credentials.loginRefused(s.type, "", "unsupported-protocol", { remote: socket.remoteAddress });
      });
    });
  };
  const server = createServer((socket) => {
    admit(socket, "mqtt");
    accept(socket);
  });
  const listen = (srv: Server, port: number) =>
    new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, opts.host, () => {
        srv.off("error", reject);
        resolve();
      });
    });
  const websocketAccept = (peer: WsPeer) => {
    const stream = new WsStream(peer);
    peer.state = stream;
    admit(stream as unknown as Socket, "mqtt-ws");
    accept(stream as unknown as Socket);
  };
  const closeAll = () =>
    Promise.all(
      [server, tlsServer].map((x) =>
        x?.listening ? new Promise<void>((resolve) => x.close(() => resolve())) : undefined,
      ),
    );
  try {
    if (opts.tlsPort !== undefined && opts.tlsPort !== null) {
      const material = tls!.current;
      // The pool's deadline (shorter under pressure) closes a silent handshake; Node's own timeout
      // (120 s by default) only backs it up. Bun 1.4.4 reports it as a tlsClientError and leaves the
      // socket open, so that handler closes it.
      const secure = createTlsServer(
        { cert: material.cert, key: material.key, handshakeTimeout: pool.timeoutMs + 5_000 },
        (socket) => {
          // Bun hands the same TLSSocket to `connection` and here; Node wraps the raw socket it admitted.
          const tlsSocket = socket as unknown as Socket;
          const raw = (socket as unknown as { _parent?: Socket })._parent;
          if (!s.pendingOf.has(tlsSocket)) {
            const pending = raw ? s.pendingOf.get(raw) : undefined;
            if (!pending) return void socket.destroy(); // closed by the pool meanwhile
            s.pendingOf.set(tlsSocket, pending);
          }
          accept(tlsSocket);
        },
      );
      // Counted from the raw connection, before the handshake: an idle TLS socket is a pending one.
      secure.on("connection", (socket: Socket) => void admit(socket, "mqtts"));
      secure.on("tlsClientError", (err, socket) => {
        s.log.debug("mqtt tls handshake failed", { remote: socket.remoteAddress, err });
        socket.destroy();
      });
      tlsServer = secure;
      // a renewed certificate: new connections get it, open ones keep theirs
      detach.push(tls!.onChange((m) => secure.setSecureContext({ cert: m.cert, key: m.key })));
      await listen(secure, opts.tlsPort);
      const a = secure.address();
      if (a && typeof a === "object") s.log.info("listening", { listener: "mqtts", address: `${opts.host}:${a.port}` });
    }
    await listen(server, opts.port);
  } catch (err) {
    // a port in use: what already listens is closed again, so a failed start leaves nothing bound
    for (const d of detach.splice(0)) d();
    await closeAll();
    throw err;
  }
  const addressOf = (srv: Server | TlsServer | undefined) => {
    const a = srv?.address();
    return a && typeof a === "object" ? { host: opts.host, port: a.port } : undefined;
  };
  return {
    /** websocketAccept: a WebSocket peer of the web server's `/mqtt`, as a socket of this broker */
    websocketAccept,
    address: () => addressOf(server),
    tlsAddress: () => addressOf(tlsServer),
    /** stop: no new sockets; the open ones are destroyed; resolves when both servers are closed */
    async stop(beforeClose: () => Promise<void>) {
      for (const d of detach.splice(0)) d();
      const closed = Promise.all(
        [server, tlsServer].map((x) => (x ? new Promise<void>((resolve) => x.close(() => resolve())) : undefined)),
      );
      await beforeClose();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closed;
    },
  };
}
