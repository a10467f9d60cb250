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
export function htmlResponse(body: string | Promise<string>, status?: number, headers?: Record<string, string>): Response | Promise<Response>;
export function htmlResponse(body: string | Promise<string>, status = 200, headers: Record<string, string> = {}): Response | Promise<Response> {
  if (typeof body !== "string") return body.then((b) => htmlResponse(b, status, headers));
  return new Response(body, { status, headers: { "content-type": "text/html; charset=utf-8", ...headers } });
}

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
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

const holds = new WeakMap<Request, (seconds: number) => void>();

/** setHoldControl: the web server says how a request may outlive the idle timeout (Bun's default is ~10 s). */
export function setHoldControl(request: Request, hold: (seconds: number) => void): void {
  holds.set(request, hold);
}

/** holdOpen: a response that is meant to take a while (a long poll) keeps its connection that long. */
export function holdOpen(request: Request, seconds: number): void {
  holds.get(request)?.(seconds);
}

/**
 * HttpMount: a listener's share of the HTTP port. The web server hands it every request whose path it
 * claims, before the admin routes and their sign-in guard: device credentials and admin credentials
 * never open each other's routes.
 */
export interface HttpMount {
  claims(path: string): boolean;
  fetch(request: Request, remote: string): Response | Promise<Response>;
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
}
