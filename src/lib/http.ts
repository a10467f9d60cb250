/** Small helpers for requests and responses; know nothing of the domain. */

export function isHtmx(request: Request): boolean {
  return request.headers.get("hx-request") === "true";
}

/** field: one string from a parsed form or JSON body, whatever shape the body came in. */
export function field(body: unknown, name: string): string | undefined {
  if (!body || typeof body !== "object") return undefined;
  const v = (body as Record<string, unknown>)[name];
  if (Array.isArray(v)) return typeof v[0] === "string" ? v[0] : undefined;
  return typeof v === "string" ? v : undefined;
}

/** htmlResponse: JSX renders to a string, or to a promise of one when a component is async. */
export function htmlResponse(body: string, status?: number, headers?: Record<string, string>): Response;
export function htmlResponse(
  body: string | Promise<string>,
  status?: number,
  headers?: Record<string, string>,
): Response | Promise<Response>;
export function htmlResponse(
  body: string | Promise<string>,
  status = 200,
  headers: Record<string, string> = {},
): Response | Promise<Response> {
  if (typeof body !== "string") return body.then((b) => htmlResponse(b, status, headers));
  return new Response(body, { status, headers: { "content-type": "text/html; charset=utf-8", ...headers } });
}

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/**
 * problem: the one error answer of every JSON route (the admin API and the device routes alike):
 * `{error, message}` with a stable code, and `fields` naming what was wrong with the input.
 */
export function problem(
  status: number,
  error: string,
  message: string,
  headers: Record<string, string> = {},
  fields?: Record<string, string>,
): Response {
  return jsonResponse({ error, message, ...(fields && Object.keys(fields).length ? { fields } : {}) }, status, {
    "cache-control": "no-store",
    ...headers,
  });
}

export function redirect(location: string, status = 303): Response {
  return new Response(null, { status, headers: { location } });
}

/** safeNext: only same-site relative paths, so `?next=` cannot send a signed-in admin elsewhere. */
export function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])[\w\-./?=&%]*$/.test(next) ? next : "/integrations";
}

const remotes = new WeakMap<Request, string>();

/** setRemote: the web server records each request's peer address as it accepts it. */
export function setRemote(request: Request, address: string): void {
  remotes.set(request, address);
}

/** remoteOf: the peer address of a request ("local" for one built in process, e.g. by a test). */
export function remoteOf(request: Request): string {
  return remotes.get(request) ?? "local";
}

const idleHooks = new WeakMap<Request, (seconds?: number) => void>();

/**
 * setIdleHook: the web server lets the routes of a request change that connection's idle timeout
 * (`undefined`: back to the server's short one).
 */
export function setIdleHook(request: Request, hook: (seconds?: number) => void): void {
  idleHooks.set(request, hook);
}

/**
 * allowIdle: a long-lived answer (a long poll, an event stream) asks that its connection may stay
 * silent for `seconds` (at most 255) instead of the server's short default; traffic on it starts the
 * count again. Does nothing for a request that did not come through the web server (`app.handle`).
 */
export function allowIdle(request: Request, seconds: number): void {
  idleHooks.get(request)?.(Math.min(255, Math.max(0, Math.ceil(seconds))));
}

/**
 * endIdle: the long wait is over (the answer is ready): the connection goes back to the server's
 * short idle timeout, which a kept-alive connection would otherwise keep for its next requests.
 */
export function endIdle(request: Request): void {
  idleHooks.get(request)?.();
}

/**
 * HttpMount: a listener's share of the HTTP port. The web server hands it every request whose path it
 * claims, before the admin routes and their sign-in guard: device credentials and admin credentials
 * never open each other's routes.
 */
export interface HttpMount {
  claims(path: string): boolean;
  fetch(request: Request, remote: string): Response | Promise<Response>;
  /** how the request counter labels its requests (`device`); absent: counted with the admin routes */
  readonly routeClass?: string;
  /** the largest request body it accepts (the server's own limit is raised to it) */
  readonly maxBodyBytes?: number;
  /** a WebSocket endpoint on the same port (MQTT over WebSockets at /mqtt) */
  readonly websocket?: WsMount;
}

/** WsMount: one WebSocket path; the web server upgrades requests to it and hands over the sockets. */
export interface WsMount {
  readonly path: string;
  /** the subprotocol it answers with when the client offers it (`mqtt`) */
  readonly protocol?: string;
  /**
   * the largest message it takes: the server buffers a message (and its fragments) until it is whole,
   * up to this, for every connection, logged in or not
   */
  readonly maxMessageBytes: number;
  open(ws: WsPeer): void;
  message(ws: WsPeer, data: Buffer): void;
  close(ws: WsPeer): void;
}

/** WsPeer: what a WebSocket mount sees of one connection. */
export interface WsPeer {
  readonly remote: string;
  /** per-connection state of the mount */
  state?: unknown;
  send(data: Uint8Array): void;
  close(): void;
  /**
   * loggedIn: the mount's client has logged in (MQTT CONNACK 0): the connection is long-lived, and a
   * newcomer past the connection cap closes an ordinary one before it
   */
  loggedIn?(): void;
}
