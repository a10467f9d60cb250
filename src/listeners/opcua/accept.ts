import type { Socket } from "node:net";
import type { OPCUAServer } from "node-opcua-server";
import type { AcceptPool, PendingSocket } from "../../core/accept-pool.ts";
import { takeOverAccept, type OpcuaAccept } from "./node-opcua-internals.ts";

/**
 * admitThroughPool: every socket of the OPC UA endpoints counts in the accept pool from accept until
 * its secure channel is open (HEL/ACK and OpenSecureChannel, what a real client sends at once); the
 * pool's deadline closes an idle one (node-opcua alone gives it 30 s) and evicts it for a newcomer.
 * node-opcua sees a socket once it has sent its first bytes: a silent one never costs a channel.
 *
 * node-opcua has its own limit of channels per endpoint (pending ones included). A newcomer that finds
 * it reached waits (in the pool, under its deadline) while the oldest socket still opening its channel
 * is closed to make room; only when every channel is open does node-opcua decide itself (it closes its
 * oldest channel without a session, Part 4 §5.5.2, or refuses when all have one).
 */
export function admitThroughPool(server: OPCUAServer, pool: AcceptPool): void {
  const states = new WeakMap<OpcuaAccept, EndpointState>();
  /** socket by `address:port`, to find the one whose channel has opened */
  const byPeer = new Map<string, { socket: Socket; state: EndpointState }>();
  takeOverAccept(
    server,
    (socket, endpoint) => {
      let state = states.get(endpoint);
      if (!state) states.set(endpoint, (state = new EndpointState(endpoint)));
      const remote = socket.remoteAddress ?? "unknown";
      const pending = pool.admit("opcua", remote, () => socket.destroy());
      const peer = `${remote}:${socket.remotePort}`;
      byPeer.set(peer, { socket, state });
      socket.once("close", () => {
        pending.leave();
        state.forget(socket);
        if (byPeer.get(peer)?.socket === socket) byPeer.delete(peer);
      });
      // node-opcua makes a channel (timers, buffers: ~200 KiB, ~300 µs) only for a socket that sends
      // something: its first bytes are read here and put back for node-opcua's transport, which
      // resumes the socket and reads on `data`.
      socket.once("data", (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        state.enqueue(socket, pending);
      });
      socket.resume();
    },
    (remote, port) => {
      const entry = byPeer.get(`${remote}:${port}`);
      entry?.state.opened(entry.socket); // a secure channel is open: no longer a stranger at the door
    },
    pool.capacity,
  );
}

/** EndpointState: one endpoint's sockets between accept and an open secure channel. */
class EndpointState {
  /** handed to node-opcua, channel not open yet, oldest first (closing one ends its channel) */
  #opening = new Map<Socket, PendingSocket>();
  /** handed this turn of the event loop (node-opcua makes the channel on the next) */
  #handing = 0;
  /** admitted, waiting for a channel to end, oldest first (a socket leaves it when it closes) */
  #waiting = new Map<Socket, PendingSocket>();
  /** closed to make room, their channels not ended yet */
  #closing = 0;

  constructor(private readonly endpoint: OpcuaAccept) {}

  enqueue(socket: Socket, pending: PendingSocket): void {
    this.#waiting.set(socket, pending);
    this.#serve();
  }

  opened(socket: Socket): void {
    this.#opening.get(socket)?.leave();
    this.#opening.delete(socket);
  }

  forget(socket: Socket): void {
    this.#waiting.delete(socket);
    // a channel that ends by itself (closed by the client or the pool) makes room too, a turn later
    if (this.#opening.delete(socket) && this.#waiting.size) setImmediate(() => this.#serve());
  }

  #hand(socket: Socket, pending: PendingSocket): void {
    this.#handing++;
    this.endpoint.hand(socket);
    setImmediate(() => {
      this.#handing--;
      if (!socket.destroyed) this.#opening.set(socket, pending);
      this.#serve();
    });
  }

  #serve(): void {
    for (const [socket, pending] of this.#waiting) {
      if (this.endpoint.room() <= 0) break;
      this.#waiting.delete(socket);
      if (!socket.destroyed) this.#hand(socket, pending);
    }
    // each socket still waiting needs a channel to end: close as many of the oldest still opening
    while (this.#waiting.size > this.#closing) {
      const victim = this.#opening.keys().next().value;
      if (!victim) break;
      this.#opening.delete(victim);
      this.#closing++;
      victim.once("close", () =>
        // the channel ends on the socket's close; it is counted out a turn later
        setImmediate(() => {
          this.#closing--;
          this.#serve();
        }),
      );
      victim.destroy();
    }
    // Nothing is opening, closing or being handed: every channel is open. node-opcua decides.
    if (this.#closing === 0 && this.#handing === 0 && this.#opening.size === 0) {
      for (const [socket, pending] of this.#waiting) if (!socket.destroyed) this.#hand(socket, pending);
      this.#waiting.clear();
    }
  }
}
