import type { WebApp } from "../../web/app.tsx";
import type { Listener } from "../listener.ts";

/** createHttpListener: serves the admin page and the JSON API. */
export function createHttpListener(app: WebApp, opts: { host: string; port: number; maxBodyBytes: number }): Listener {
  let server: ReturnType<typeof Bun.serve> | undefined;
  return {
    name: "http",
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
