import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, tempDir, testApp } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Forward auth through real reverse proxies (Debian's nginx with auth_request, Debian's caddy with
 * forward_auth; .ci/run installs both), each in front of a small upstream that echoes what it got.
 */
let app: App;
let gatehouse: string;
let upstream: ReturnType<typeof Bun.serve>;
beforeAll(async () => {
  ({ app, url: gatehouse } = await testApp(["--opcua-port", "off", "--mqtt-port", "off"]));
  upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => new Response(JSON.stringify({ path: new URL(req.url).pathname, integration: req.headers.get("x-gatehouse-integration") }), { headers: { "content-type": "application/json" } }),
  });
  const dash = await app.core.credentials.create({ type: "http", username: "dash-viewer", password: "dash-viewer-pass" });
  app.core.credentials.update(dash.integration.id, { subscribeAcl: ["/dashboard/#"], publishAcl: [] });
});
afterAll(async () => {
  upstream.stop(true);
  await app.stop();
  cleanupTempDirs();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const auth = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });

async function checkProxy(proxy: string) {
  const through = await eventually(async () => {
    const res = await fetch(`${proxy}/dashboard/line1`, { headers: auth("dash-viewer", "dash-viewer-pass") });
    expect(res.status).toBe(200);
    return res.json();
  }, 10_000);
  expect(through).toEqual({ path: "/dashboard/line1", integration: "dash-viewer" });
  const wrong = await fetch(`${proxy}/dashboard/line1`, { headers: auth("dash-viewer", "not-the-password") });
  expect(wrong.status).toBe(401);
  expect(wrong.headers.get("www-authenticate")).toContain('Basic realm="gatehouse"');
  expect((await fetch(`${proxy}/dashboard/line1`)).status).toBe(401);
  expect((await fetch(`${proxy}/admin/settings`, { headers: auth("dash-viewer", "dash-viewer-pass") })).status).toBe(403);
  // A write to the dashboard needs the publish filters, which are empty here.
  expect((await fetch(`${proxy}/dashboard/line1`, { method: "POST", body: "x", headers: auth("dash-viewer", "dash-viewer-pass") })).status).toBe(403);
}

describe("forward auth behind reverse proxies", () => {
  it("answers the subrequest directly: 200 with the integration, 401, 403", async () => {
    const ok = await fetch(`${gatehouse}/auth/http`, { headers: { ...auth("dash-viewer", "dash-viewer-pass"), "x-original-uri": "/dashboard/x?y=1" } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-gatehouse-integration")).toBe("dash-viewer");
    expect((await fetch(`${gatehouse}/auth/http`, { headers: { "x-forwarded-uri": "/dashboard/x" } })).status).toBe(401);
    expect((await fetch(`${gatehouse}/auth/http`, { headers: { ...auth("dash-viewer", "dash-viewer-pass"), "x-forwarded-uri": "/other" } })).status).toBe(403);
  });

  it("nginx auth_request", async () => {
    const dir = tempDir("gatehouse-nginx-");
    const port = await freePort();
    const gh = new URL(gatehouse);
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      auth_request /_gatehouse;
      auth_request_set $gatehouse_integration $upstream_http_x_gatehouse_integration;
      proxy_set_header X-Gatehouse-Integration $gatehouse_integration;
      proxy_pass http://127.0.0.1:${upstream.port};
    }
    location = /_gatehouse {
      internal;
      proxy_pass http://${gh.host}/auth/http;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }
  }
}
`,
    );
    const nginx = Bun.spawn([Bun.which("nginx") ?? "/usr/sbin/nginx", "-c", join(dir, "nginx.conf"), "-p", dir], { stdout: "ignore", stderr: "pipe" });
    try {
      await checkProxy(`http://127.0.0.1:${port}`);
    } finally {
      nginx.kill();
      await nginx.exited;
    }
  }, 30_000);

  it("caddy forward_auth", async () => {
    const dir = tempDir("gatehouse-caddy-");
    const port = await freePort();
    const gh = new URL(gatehouse);
    writeFileSync(
      join(dir, "Caddyfile"),
      `{
  admin off
  auto_https off
}
http://127.0.0.1:${port} {
  forward_auth ${gh.host} {
    uri /auth/http
    copy_headers X-Gatehouse-Integration
  }
  reverse_proxy 127.0.0.1:${upstream.port}
}
`,
    );
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, "data"), XDG_CONFIG_HOME: join(dir, "config") };
    const caddy = Bun.spawn(["caddy", "run", "--config", join(dir, "Caddyfile"), "--adapter", "caddyfile"], { stdout: "ignore", stderr: "ignore", env });
    try {
      await checkProxy(`http://127.0.0.1:${port}`);
    } finally {
      caddy.kill();
      await caddy.exited;
    }
  }, 30_000);
});
