import type { WebApp } from "./app.tsx";

export interface WebServer {
  start(): Promise<void>;
  stop(): Promise<void>;
  address(): { host: string; port: number } | undefined;
}

/** createWebServer: serves the admin page, the JSON API and the routes of HTTP-based listeners on one port. */
export function createWebServer(app: WebApp, opts: { host: string; port: number; maxBodyBytes: number }): WebServer {
  let server: ReturnType<typeof Bun.serve> | undefined;
  return {
    async start() {
      app.listen({ hostname: opts.host, port: opts.port, maxRequestBodySize: opts.maxBodyBytes });
      server = app.server ?? undefined;
      if (!server) throw new Error(`http: could not listen on ${opts.host}:${opts.port}`);
    },
    async stop() {
      if (!server) return;
      const s = server;
      server = undefined;
      await s.stop(true);
    },
    address() {
      return server ? { host: opts.host, port: server.port ?? opts.port } : undefined;
    },
  };
}
