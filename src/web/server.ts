import type { ServerWebSocket } from "bun";
import { clientAddress, type TrustedProxies } from "../lib/client-address.ts";
import { setIdleHook, setRemote, type WsMount, type WsPeer } from "../lib/http.ts";
import type { TlsSource } from "../lib/tls.ts";
import type { AcceptPool } from "../core/accept-pool.ts";
import type { Counter } from "../core/metrics.ts";
import { startAcceptFront, type AcceptFront } from "./front.ts";

/**
 * routeClass: what kind of route a path is, for the request counter (bounded label values); a part's
 * mount names its own (`mountClass`), the rest are the web layer's.
 */
function routeClass(path: string, mountClass?: (path: string) => string | undefined): string {
  const own = mountClass?.(path);
  if (own) return own;
  if (path.startsWith("/api/")) return "api";
  if (path.startsWith("/assets/")) return "asset";
  if (path === "/healthz" || path === "/readyz" || path === "/metrics") return "ops";
  return "page";
}
import type { WebApp } from "./app.tsx";

/**
 * shortIdleSeconds: a connection silent this long is closed (Bun's default, said here). Routes that
 * answer late on purpose ask for more with `allowIdle` (lib/http.ts): `?wait=` long polls and /events.
 */
const shortIdleSeconds = 10;

export interface WebServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** "http" or "https": where that port listens, once started */
  address(scheme?: "http" | "https"): { host: string; port: number } | undefined;
}

interface WsData {
  mount: WsMount;
  peer: WsPeer;
}

/**
 * createWebServer: the admin page, the JSON API, the HTTP integrations and MQTT over WebSockets, on
 * the HTTP port and the HTTPS port (one TLS configuration for all; a reloaded certificate takes
 * effect for new connections, open ones stay). Each request's client address is resolved once here
 * (the peer, or behind a trusted proxy its X-Forwarded-For) and recorded for every throttle and log
 * (admin sign-in, device API, forward auth); `redirect` sends plain HTTP to HTTPS instead.
 */
export function createWebServer(
  app: WebApp,
  opts: {
    host: string;
    httpPort: number | null;
    httpsPort: number | null;
    tls?: TlsSource;
    redirect?: boolean;
    trustedProxies?: TrustedProxies;
    maxBodyBytes: number;
    websockets?: WsMount[];
    requests?: Counter;
    /** how the request counter labels a part's own routes */
    routeClassOf?: (path: string) => string | undefined;
    /** count each socket from accept in this pool (through an accept front, ./front.ts); absent: Bun.serve binds the ports itself */
    pool?: AcceptPool;
    /** with a pool: connections per port past their first request, at most */
    maxConnections?: number;
  },
): WebServer {
  const servers: {
    scheme: "http" | "https";
    server: ReturnType<typeof Bun.serve<WsData, never>>;
    front?: AcceptFront;
  }[] = [];
  let detachTls: (() => void) | undefined;
  const websockets = opts.websockets ?? [];

  const handler =
    (scheme: "http" | "https") => (request: Request, server: ReturnType<typeof Bun.serve<WsData, never>>) => {
      const ip = server.requestIP(request);
      let remote = ip?.address ?? "local";
      const front = servers.find((s) => s.server === server)?.front;
      // through the accept front: the client is the one behind this loopback connection, found by its
      // source address and port (see front.ts); a connection that is not the front's own is refused
      const frontPeer = front && ip ? front.peer(ip.address, ip.port) : undefined;
      if (front) {
        if (!frontPeer)
          return new Response("connect through the public port", { status: 403, headers: { connection: "close" } });
        frontPeer.entered();
        remote = frontPeer.remote;
      }
      if (opts.trustedProxies)
        remote = clientAddress(remote, request.headers.get("x-forwarded-for"), opts.trustedProxies);
      setRemote(request, remote);
      // A route that answers late on purpose (allowIdle) also marks its connection long-lived for the
      // front, so a newcomer past --http-max-connections closes an ordinary connection before it.
      setIdleHook(request, (seconds) => {
        server.timeout(request, seconds ?? shortIdleSeconds);
        frontPeer?.longLived(seconds !== undefined);
      });
      const url = new URL(request.url);
      if (scheme === "http" && opts.redirect && opts.httpsPort !== null) {
        const https = servers.find((s) => s.scheme === "https");
        const httpsPort = https?.front?.port ?? https?.server.port ?? opts.httpsPort;
        return Response.redirect(`https://${url.hostname}:${httpsPort}${url.pathname}${url.search}`, 308);
      }
      const ws = websockets.find((w) => w.path === url.pathname);
      if (ws && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
        const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
        const headers =
          ws.protocol && offered.includes(ws.protocol) ? { "sec-websocket-protocol": ws.protocol } : undefined;
        const peer: WsPeer = {
          remote,
          send: () => {},
          close: () => {},
          loggedIn: () => frontPeer?.longLived(true),
        };
        if (server.upgrade(request, { data: { mount: ws, peer }, headers })) return undefined as unknown as Response;
        return new Response("a WebSocket upgrade was expected", { status: 400 });
      }
      const answer = app.handle(request);
      if (!opts.requests) return answer;
      const counter = opts.requests;
      return answer.then(
        (res) => (counter.inc({ class: routeClass(url.pathname, opts.routeClassOf), status: String(res.status) }), res),
      );
    };

  const websocket = {
    open(ws: ServerWebSocket<WsData>) {
      const { peer, mount } = ws.data;
      peer.send = (data) => void ws.sendBinary(data);
      peer.close = () => ws.close();
      mount.open(peer);
    },
    message(ws: ServerWebSocket<WsData>, data: string | Buffer) {
      ws.data.mount.message(ws.data.peer, typeof data === "string" ? Buffer.from(data) : Buffer.from(data));
    },
    close(ws: ServerWebSocket<WsData>) {
      ws.data.mount.close(ws.data.peer);
    },
    // the largest message a mount takes (MQTT: a packet): Bun holds a message's fragments until it is whole,
    // for every socket, logged in or not (at 16 x the body limit, a stranger's half messages on 100
    // sockets held 1.4 GB before any login: finding F7 of the parser attack)
    maxPayloadLength: Math.max(1024, ...websockets.map((w) => w.maxMessageBytes)),
    // A WebSocket (MQTT over WebSockets) is quiet between messages; MQTT's own keep-alive is aedes'
    // business (it closes a client silent for 1.5 x its keep-alive). Bun pings a connection quiet for
    // `idleTimeout` and closes it only when no pong comes: a live client with keep-alive 0 or longer
    // than this stays, a vanished one (power cut, no FIN) is closed after about 2 minutes.
    idleTimeout: 120,
    sendPings: true,
  };

  const serve = (scheme: "http" | "https", port: number) => {
    const tls = scheme === "https" ? { cert: opts.tls!.current.cert, key: opts.tls!.current.key } : undefined;
    if (!opts.pool) {
      const server = Bun.serve<WsData, never>({
        hostname: opts.host,
        port,
        maxRequestBodySize: opts.maxBodyBytes,
        idleTimeout: shortIdleSeconds,
        tls,
        fetch: handler(scheme),
        websocket,
      });
      servers.push({ scheme, server });
      return;
    }
    // Bun.serve on a loopback port behind the accept front, which owns the public one
    const server = Bun.serve<WsData, never>({
      hostname: "127.0.0.1",
      port: 0,
      maxRequestBodySize: opts.maxBodyBytes,
      idleTimeout: shortIdleSeconds,
      tls,
      fetch: handler(scheme),
      websocket,
    });
    const entry: (typeof servers)[number] = { scheme, server };
    servers.push(entry);
    entry.front = startAcceptFront({
      host: opts.host,
      port,
      backendPort: server.port!,
      pool: opts.pool,
      listener: scheme,
      maxConnections: opts.maxConnections ?? 2048,
    });
  };

  return {
    async start() {
      try {
        if (opts.httpPort !== null) serve("http", opts.httpPort);
        if (opts.httpsPort !== null) {
          if (!opts.tls) throw new Error("https: no TLS material");
          serve("https", opts.httpsPort);
          detachTls = opts.tls.onChange((m) => {
            const s = servers.find((x) => x.scheme === "https")?.server;
            s?.reload({ tls: { cert: m.cert, key: m.key } } as never);
          });
        }
      } catch (err) {
        await this.stop();
        throw new Error(`http: could not listen: ${(err as Error).message}`);
      }
    },
    async stop() {
      detachTls?.();
      for (const { server, front } of servers.splice(0)) {
        front?.stop();
        await server.stop(true);
      }
    },
    address(scheme = "http") {
      const s = servers.find((x) => x.scheme === scheme) ?? (scheme === "http" ? servers[0] : undefined);
      return s ? { host: opts.host, port: s.front?.port ?? s.server.port ?? 0 } : undefined;
    },
  };
}
