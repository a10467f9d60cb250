import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, tempDir, testApp } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Forward auth through real reverse proxies (Debian's nginx with auth_request, Debian's caddy with
 * forward_auth; .ci/run installs both), each in front of two upstreams: one that echoes the request
 * target it received byte for byte, and Python's http.server, which decodes a path before it
 * normalises it (so `/dashboard/x%2F..%2F..%2Fother/secret.txt` is `/other/secret.txt` to it).
 * Clients speak raw HTTP/1.1 from chosen loopback addresses (127.0.0.0/8 is all loopback), so each
 * is a distinct real client to the proxy, and every path trick reaches the proxy exactly as typed.
 */

afterAll(cleanupTempDirs);

// ---------- raw HTTP, from a chosen source address

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** send: one request written as typed (no URL parsing on our side), `Connection: close`, from `from`. */
function send(
  port: number,
  opts: { target: string; method?: string; headers?: Record<string, string>; from?: string; body?: string },
): Promise<RawResponse> {
  const body = opts.body ?? "";
  const headers = {
    host: `127.0.0.1:${port}`,
    connection: "close",
    ...(body || opts.method === "POST" ? { "content-length": String(Buffer.byteLength(body)) } : {}),
    ...opts.headers,
  };
  const head = `${opts.method ?? "GET"} ${opts.target} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port, localAddress: opts.from ?? "127.0.0.1" }, () =>
      socket.write(Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(body)])),
    );
    socket.on("data", (c) => chunks.push(Buffer.from(c)));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const status = Number(statusLine?.split(" ")[1]);
      if (!status) return reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      const h: Record<string, string> = {};
      for (const l of lines) h[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
      let rest = text.slice(end + 4);
      if (h["transfer-encoding"] === "chunked") {
        let out = "";
        for (;;) {
          const nl = rest.indexOf("\r\n");
          const size = parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        rest = out;
      }
      resolve({ status, headers: h, body: Buffer.from(rest, "latin1").toString("utf8") });
    });
  });
}

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// ---------- upstreams

/** echoUpstream: answers every request with the raw request target it got; `seen` lists them. */
async function echoUpstream() {
  const seen: string[] = [];
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on("error", () => {});
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, Buffer.from(d)]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("latin1").split("\r\n");
      const length = Number(head.find((l) => /^content-length:/i.test(l))?.split(":")[1] ?? 0);
      if (buf.length < end + 4 + length) return; // read the whole body before answering
      const target = head[0]!.split(" ")[1]!;
      const integration =
        head
          .find((l) => /^x-gatehouse-integration:/i.test(l))
          ?.split(":")[1]
          ?.trim() ?? null;
      seen.push(target);
      const body = JSON.stringify({ target, integration });
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as { port: number }).port, seen, close: () => server.close() };
}

/**
 * pythonUpstream: `python3 -m http.server`'s handler over a folder with /dashboard/line1,
 * /dashboard/x/, /other/secret.txt and /admin/secret; prints every request line it parses.
 */
async function pythonUpstream() {
  const dir = tempDir("gatehouse-python-");
  const root = join(dir, "root");
  for (const d of ["dashboard/x", "other", "admin"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "dashboard/line1"), "dashboard line1");
  writeFileSync(join(root, "other/secret.txt"), "OTHER-SECRET");
  writeFileSync(join(root, "admin/secret"), "ADMIN-SECRET");
  writeFileSync(
    join(dir, "serve.py"),
    `import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def parse_request(self):
        ok = super().parse_request()
        print("SEEN", self.command, self.path, flush=True)
        return ok
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
`,
  );
  const proc = Bun.spawn(["python3", join(dir, "serve.py"), root], { stdout: "pipe", stderr: "ignore" });
  const seen: string[] = [];
  let port = 0;
  let text = "";
  const ready = (async () => {
    const decoder = new TextDecoder();
    const reader = proc.stdout.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
      let nl: number;
      while ((nl = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        if (line.startsWith("PORT ")) port = Number(line.slice(5));
        else if (line.startsWith("SEEN ")) seen.push(line.slice(5));
      }
    }
  })();
  void ready;
  await eventually(() => port > 0, 10_000);
  return { port, seen, proc };
}

// ---------- proxies, configured as the README shows

/**
 * Site: one server block in front of one upstream. `strip: false` leaves out the lines that remove the
 * client's copies of the other proxies' headers (the README before this fix): a client header may then
 * get a request refused, never let one through.
 */
interface Site {
  upstream: number;
  strip: boolean;
}

function startNginx(gatehouse: string, sites: Site[]) {
  const dir = tempDir("gatehouse-nginx-");
  const ports = sites.map(() => 0);
  return (async () => {
    for (let i = 0; i < ports.length; i++) ports[i] = await freePort();
    const gh = new URL(gatehouse);
    const servers = sites.map(
      ({ upstream, strip }, i) => `
  server {
    listen 127.0.0.1:${ports[i]};
    location / {
      auth_request /_gatehouse;
      auth_request_set $gatehouse_integration $upstream_http_x_gatehouse_integration;
      auth_request_set $gatehouse_retry_after $upstream_http_retry_after;
      add_header Retry-After $gatehouse_retry_after always;
      proxy_set_header X-Gatehouse-Integration $gatehouse_integration;
      proxy_pass http://127.0.0.1:${upstream};
    }
    location = /_gatehouse {
      internal;
      proxy_pass http://${gh.host}/auth/http;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $remote_addr;${
        strip
          ? `
      proxy_set_header X-Forwarded-Uri "";
      proxy_set_header X-Forwarded-Method "";`
          : ""
      }
    }
  }`,
    );
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${servers.join("\n")}
}
`,
    );
    const proc = Bun.spawn([Bun.which("nginx") ?? "/usr/sbin/nginx", "-c", join(dir, "nginx.conf"), "-p", dir], {
      stdout: "ignore",
      stderr: "pipe",
    });
    return { proc, ports, errorLog: join(dir, "error.log") };
  })();
}

function startCaddy(gatehouse: string, sites: Site[]) {
  const dir = tempDir("gatehouse-caddy-");
  return (async () => {
    const ports: number[] = [];
    for (const _ of sites) ports.push(await freePort());
    const gh = new URL(gatehouse);
    const blocks = sites.map(
      ({ upstream, strip }, i) => `http://127.0.0.1:${ports[i]} {
  forward_auth ${gh.host} {
    uri /auth/http
    copy_headers X-Gatehouse-Integration${
      strip
        ? `
    header_up -X-Original-URI
    header_up -X-Original-Method`
        : ""
    }
  }
  reverse_proxy 127.0.0.1:${upstream}
}`,
    );
    writeFileSync(join(dir, "Caddyfile"), `{\n  admin off\n  auto_https off\n}\n${blocks.join("\n")}\n`);
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, "data"), XDG_CONFIG_HOME: join(dir, "config") };
    const proc = Bun.spawn(["caddy", "run", "--config", join(dir, "Caddyfile"), "--adapter", "caddyfile"], {
      stdout: "ignore",
      stderr: "ignore",
      env,
    });
    return { proc, ports, errorLog: undefined };
  })();
}

// ---------- the appliance

/** seed: the integrations every proxy is tried with. */
async function seed(app: App) {
  const { credentials } = app.core;
  const dash = await credentials.create({ type: "http", username: "dash-viewer", password: "dash-viewer-pass" });
  credentials.update(dash.integration.id, { subscribeAcl: ["/dashboard/#"], publishAcl: [] });
  const most = await credentials.create({ type: "http", username: "all-but-admin", password: "all-but-admin-pass" });
  credentials.update(most.integration.id, {
    subscribeAcl: ["#"],
    publishAcl: ["#"],
    denySubscribeAcl: ["/admin/#"],
    denyPublishAcl: ["/admin/#"],
  });
}

const as = {
  dash: { authorization: basic("dash-viewer", "dash-viewer-pass") },
  most: { authorization: basic("all-but-admin", "all-but-admin-pass") },
};

/**
 * pathTricks: the issue's list first, then more spellings of the same escapes. Each is allowed to
 * nobody: `dash` may read `/dashboard/#` only, `most` everything but `/admin/#`.
 */
const pathTricks: [target: string, who: keyof typeof as][] = [
  ["/dashboard%2f..%2fadmin%2fsecret", "dash"],
  ["/dashboard/x%2F..%2F..%2Fother/secret.txt", "dash"],
  ["//admin/secret", "most"],
  ["/x//admin/secret", "most"],
  ["/ADMIN/secret", "dash"],
  ["/admin./secret", "most"],
  ["/admin;x/secret", "most"],
  ["/admin%2e/secret", "most"],
  ["/admin%20/secret", "most"],
  ["/dashboard/%2e%2e/admin/secret", "dash"],
  ["/dashboard/.%2e/other/secret.txt", "dash"],
  ["/dashboard/x/../../other/secret.txt", "dash"],
  ["/dashboard/..%2fadmin/secret", "dash"],
  ["/dashboard/x%5c..%5c..%5cadmin%5csecret", "dash"],
  ["/dashboard\\..\\admin\\secret", "dash"],
  ["/dashboard/%252e%252e/admin/secret", "dash"],
  ["/dashboard/..;/admin/secret", "dash"],
  ["/dashboard/%c0%ae%c0%ae/admin/secret", "dash"],
  ["/dashboard/%ef%bc%8e%ef%bc%8e/admin/secret", "dash"],
  ["/dashboard/x%3f/../../admin/secret", "dash"],
];

/** The same request with and without a header the client made up: the header changes nothing. */
const clientHeaders: Record<string, string>[] = [
  { "x-original-uri": "/dashboard/x" },
  { "x-original-uri": "/admin/secret" },
  { "x-original-method": "GET" },
  { "x-original-method": "POST" },
  { "x-forwarded-uri": "/dashboard/x" },
  { "x-forwarded-method": "GET" },
  { "x-forwarded-for": "10.9.9.9" },
  { "x-real-ip": "10.9.9.9" },
  { "x-gatehouse-uri": "/dashboard/x", "x-gatehouse-method": "GET" },
];

for (const proxyName of ["nginx", "caddy"] as const) {
  describe(`forward auth behind ${proxyName}`, () => {
    let app: App;
    let lines: string[];
    let echo: Awaited<ReturnType<typeof echoUpstream>>;
    let python: Awaited<ReturnType<typeof pythonUpstream>>;
    let proxy: { proc: ReturnType<typeof Bun.spawn>; ports: number[]; errorLog: string | undefined };
    let toEcho: number;
    let toPython: number;
    /** the same proxy without the lines that strip the client's copies of the other family */
    let unstripped: number;

    beforeAll(async () => {
      let url: string;
      ({ app, url, lines } = await testApp([
        "--opcua-port",
        "off",
        "--mqtt-port",
        "off",
        "--forward-auth-proxy",
        proxyName,
        "--trusted-proxies",
        "127.0.0.1",
      ]));
      await seed(app);
      echo = await echoUpstream();
      python = await pythonUpstream();
      const sites = [echo.port, python.port, echo.port].map((upstream, i) => ({ upstream, strip: i < 2 }));
      // a proxy that exits at once lost a race for a port it was given (found in a full run beside other
      // work: caddy's port never opened): it gets new ones, at most three times
      for (let attempt = 1; ; attempt++) {
        proxy = await (proxyName === "nginx" ? startNginx : startCaddy)(url, sites);
        [toEcho, toPython, unstripped] = proxy.ports as [number, number, number];
        const up = await Promise.race([
          eventually(
            async () => expect((await send(toEcho, { target: "/dashboard/line1", headers: as.dash })).status).toBe(200),
            15_000,
          ).then(() => "up" as const),
          proxy.proc.exited.then(() => "exited" as const),
        ]);
        if (up === "up") break;
        if (attempt === 3) throw new Error(`${proxyName} exited at start three times`);
      }
      await eventually(
        async () => expect((await send(toPython, { target: "/dashboard/line1", headers: as.dash })).status).toBe(200),
        15_000,
      );
    }, 30_000);
    afterAll(async () => {
      proxy?.proc.kill();
      python?.proc.kill();
      await Promise.all([proxy?.proc.exited, python?.proc.exited]);
      echo?.close();
      await app?.stop();
    });

    it("lets an allowed request through with the integration's name; 401 with the challenge; 403 for other paths and writes", async () => {
      const ok = await send(toEcho, { target: "/dashboard/line1?x=1", headers: as.dash, from: "127.0.0.2" });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toEqual({ target: "/dashboard/line1?x=1", integration: "dash-viewer" });
      const py = await send(toPython, { target: "/dashboard/line1", headers: as.dash });
      expect([py.status, py.body]).toEqual([200, "dashboard line1"]);
      const wrong = await send(toEcho, {
        target: "/dashboard/line1",
        headers: { authorization: basic("dash-viewer", "not-the-password") },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.headers["www-authenticate"]).toContain('Basic realm="gatehouse"');
      expect((await send(toEcho, { target: "/dashboard/line1" })).status).toBe(401);
      expect((await send(toEcho, { target: "/admin/secret", headers: as.dash })).status).toBe(403);
      expect((await send(toEcho, { target: "/admin/secret", headers: as.most })).status).toBe(403);
      expect((await send(toEcho, { target: "/other/x", headers: as.most })).status).toBe(200);
      // a write needs a publish filter; dash-viewer has none
      expect(
        (await send(toEcho, { target: "/dashboard/line1", method: "POST", body: "x", headers: as.dash })).status,
      ).toBe(403);
      expect((await send(toEcho, { target: "/other/x", method: "POST", body: "x", headers: as.most })).status).toBe(
        200,
      );
    });

    it("refuses every path trick with 403 before either upstream sees it", async () => {
      const echoBefore = echo.seen.length;
      const pythonBefore = python.seen.length;
      for (const [target, who] of pathTricks) {
        for (const port of [toEcho, toPython]) {
          const res = await send(port, { target, headers: as[who] });
          expect({ target, port: port === toEcho ? "echo" : "python", status: res.status }).toEqual({
            target,
            port: port === toEcho ? "echo" : "python",
            status: 403,
          });
          expect(res.body).not.toContain("SECRET");
        }
      }
      // the absolute form of a request line names a host; the path in it is judged like any other
      const absolute = await send(toEcho, { target: `http://127.0.0.1:${toEcho}/admin/secret`, headers: as.most });
      expect(absolute.status).toBe(403);
      expect(echo.seen.slice(echoBefore)).toEqual([]);
      expect(python.seen.slice(pythonBefore)).toEqual([]);
      // the same path spelled plainly is served (so the upstream was there to reach)
      expect((await send(toPython, { target: "/other/secret.txt", headers: as.most })).body).toBe("OTHER-SECRET");
    });

    it("changes nothing for a client's own X-Original-*, X-Forwarded-*, X-Real-IP or X-Gatehouse-* headers", async () => {
      const requests = [
        { target: "/dashboard/x", method: "GET", expected: 200 },
        { target: "/admin/secret", method: "GET", expected: 403 },
        { target: "/dashboard/x", method: "POST", expected: 403 },
      ];
      const before = echo.seen.length;
      for (const extra of clientHeaders) {
        for (const r of requests) {
          const res = await send(toEcho, {
            target: r.target,
            method: r.method,
            body: r.method === "POST" ? "x" : undefined,
            headers: { ...as.dash, ...extra },
          });
          expect({ extra, ...r, status: res.status }).toEqual({ extra, ...r, status: r.expected });
          if (res.status === 200) expect(JSON.parse(res.body).target).toBe(r.target);
        }
      }
      expect(echo.seen.slice(before)).toEqual(clientHeaders.map(() => "/dashboard/x"));
      // configured without the stripping lines, a client's header can get its own request refused, never let one through
      for (const extra of clientHeaders) {
        for (const r of requests) {
          const res = await send(unstripped, {
            target: r.target,
            method: r.method,
            body: r.method === "POST" ? "x" : undefined,
            headers: { ...as.dash, ...extra },
          });
          const acceptable = r.expected === 403 ? [403] : [200, 403];
          expect({ extra, ...r, status: res.status, acceptable: acceptable.includes(res.status) }).toEqual({
            extra,
            ...r,
            status: res.status,
            acceptable: true,
          });
        }
      }
    });

    it("throttles 200 wrong guesses with made-up X-Forwarded-For per real address: 401, then 403 with Retry-After, never 429 or 500", async () => {
      const victim = `guessed-${proxyName}`;
      await app.core.credentials.create({ type: "http", username: victim, password: "the-real-password" });
      const statuses: number[] = [];
      const retryAfter = new Set<string | undefined>();
      for (let batch = 0; batch < 10; batch++) {
        const answers = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            send(toEcho, {
              target: "/dashboard/line1",
              from: "127.0.0.2",
              headers: {
                authorization: basic(victim, `guess-${batch}-${i}`),
                "x-forwarded-for": `203.0.113.${batch * 20 + i}`,
                "x-real-ip": `198.51.100.${i}`,
              },
            }),
          ),
        );
        for (const a of answers) {
          statuses.push(a.status);
          if (a.status === 403) retryAfter.add(a.headers["retry-after"]);
        }
      }
      expect(statuses.filter((s) => s === 401).length).toBe(10);
      expect(statuses.filter((s) => s === 403).length).toBe(190);
      expect([...retryAfter]).toEqual(["60"]);
      const remotes = new Set(
        app.core.loginLog
          .recent(200)
          .filter((f) => f.username === victim)
          .map((f) => f.remote),
      );
      expect([...remotes]).toEqual(["127.0.0.2"]); // no made-up address in the failed-logins list
      // the throttle is the pair's: the same address with the right password waits too, another does not
      expect(
        (
          await send(toEcho, {
            target: "/dashboard/line1",
            from: "127.0.0.2",
            headers: { authorization: basic(victim, "the-real-password") },
          })
        ).status,
      ).toBe(403);
      expect(
        (
          await send(toEcho, {
            target: "/other/x",
            from: "127.0.0.3",
            headers: { authorization: basic(victim, "the-real-password") },
          })
        ).status,
      ).toBe(200);
      expect(lines.some((l) => l.includes("ERROR") || l.startsWith("error"))).toBe(false);
      // nginx logs any auth status it cannot pass on ("auth request unexpected status: 429") and answers 500
      if (proxy.errorLog) expect(readFileSync(proxy.errorLog, "utf8")).not.toContain("unexpected status");
    }, 30_000);

    it("lets a device in after a neighbour's 20 wrong passwords, and after its name is sprayed from 100 addresses", async () => {
      const device = `line-panel-${proxyName}`;
      await app.core.credentials.create({ type: "http", username: device, password: "panel-password" });
      const neighbour: number[] = [];
      for (let i = 0; i < 20; i++)
        neighbour.push(
          (
            await send(toEcho, {
              target: "/x",
              from: "127.0.0.4",
              headers: { authorization: basic(device, `wrong-${i}`) },
            })
          ).status,
        );
      expect(neighbour.filter((s) => s === 403).length).toBe(10); // the neighbour's own pair is locked
      // never logged in since start: nothing cached, the device's own (address, name) pair is clean
      expect(
        (
          await send(toEcho, {
            target: "/x",
            from: "127.0.0.5",
            headers: { authorization: basic(device, "panel-password") },
          })
        ).status,
      ).toBe(200);

      const sprayed = `sprayed-${proxyName}`;
      await app.core.credentials.create({ type: "http", username: sprayed, password: "sprayed-password" });
      const spray = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          send(toEcho, {
            target: "/x",
            from: `127.0.1.${i + 1}`,
            headers: { authorization: basic(sprayed, `spray-${i}`) },
          }),
        ),
      );
      expect(spray.every((r) => r.status === 401)).toBe(true); // slowed, never locked: each address is its own pair
      expect(
        (
          await send(toEcho, {
            target: "/x",
            from: "127.0.0.6",
            headers: { authorization: basic(sprayed, "sprayed-password") },
          })
        ).status,
      ).toBe(200);
    }, 60_000);

    it("takes a burst of 200 allowed requests at once", async () => {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          send(toEcho, { target: `/dashboard/burst/${i}`, from: `127.0.2.${(i % 50) + 1}`, headers: as.dash }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    }, 30_000);

    it("refuses a 64 KB URI and a 3 KB path before the upstream sees them", async () => {
      const before = echo.seen.length;
      const huge = await send(toEcho, { target: `/dashboard/${"a".repeat(64 * 1024)}`, headers: as.dash });
      expect(huge.status).toBeGreaterThanOrEqual(400);
      expect(huge.status).toBeLessThan(500);
      const long = await send(toEcho, { target: `/dashboard/${"b".repeat(3 * 1024)}`, headers: as.dash });
      expect(long.status).toBe(403);
      expect(echo.seen.slice(before)).toEqual([]);
    });
  });
}

describe("forward auth asked directly", () => {
  const apps: Record<string, { app: App; url: string; lines: string[] }> = {};
  beforeAll(async () => {
    for (const proxy of ["off", "nginx", "caddy", "traefik", "generic", "envoy"]) {
      const args = [
        "--opcua-port",
        "off",
        "--mqtt-port",
        "off",
        ...(proxy === "off" ? [] : ["--forward-auth-proxy", proxy]),
      ];
      const made = await testApp(args);
      await seed(made.app);
      apps[proxy] = made;
    }
  }, 30_000);
  afterAll(async () => {
    for (const a of Object.values(apps)) await a.app.stop();
  });

  const get = (proxy: string, headers: Record<string, string>, init: { method?: string; path?: string } = {}) =>
    fetch(`${apps[proxy]!.url}${init.path ?? "/auth/http"}`, { method: init.method ?? "GET", headers });

  it("is off until the proxy is named: 403 with a clear message, logged once, no password checked", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get("off", { ...as.dash, "x-original-uri": "/dashboard/x", "x-original-method": "GET" });
      expect(res.status).toBe(403);
      const body = await res.json();
      expect(body.error).toBe("forward_auth_off");
      expect(body.message).toContain("--forward-auth-proxy");
    }
    // wrong credentials are not even looked at
    expect(
      (
        await get("off", {
          authorization: basic("dash-viewer", "wrong"),
          "x-original-uri": "/dashboard/x",
          "x-original-method": "GET",
        })
      ).status,
    ).toBe(403);
    expect(apps.off!.lines.filter((l) => l.includes("forward auth is off")).length).toBe(1);
    expect(apps.off!.app.core.loginLog.recent(10)).toEqual([]);
  });

  const families: Record<string, { uri: string; method: string; foreign: string[] }> = {
    nginx: { uri: "x-original-uri", method: "x-original-method", foreign: ["x-forwarded-uri", "x-forwarded-method"] },
    caddy: { uri: "x-forwarded-uri", method: "x-forwarded-method", foreign: ["x-original-uri", "x-original-method"] },
    traefik: { uri: "x-forwarded-uri", method: "x-forwarded-method", foreign: ["x-original-uri", "x-original-method"] },
    generic: {
      uri: "x-gatehouse-uri",
      method: "x-gatehouse-method",
      foreign: ["x-original-uri", "x-original-method", "x-forwarded-uri", "x-forwarded-method"],
    },
  };

  for (const [proxy, f] of Object.entries(families)) {
    it(`${proxy}: reads ${f.uri} and ${f.method} only; another family fails closed (403); a missing one is 400, never "/"`, async () => {
      const ok = await get(proxy, { ...as.dash, [f.uri]: "/dashboard/x?y=1", [f.method]: "GET" });
      expect(ok.status).toBe(200);
      expect(ok.headers.get("x-gatehouse-integration")).toBe("dash-viewer");
      expect((await get(proxy, { ...as.dash, [f.uri]: "/dashboard/x", [f.method]: "POST" })).status).toBe(403);
      expect((await get(proxy, { ...as.dash, [f.uri]: "/dashboard/x", [f.method]: "get" })).status).toBe(403); // judged as a write
      expect((await get(proxy, { ...as.dash, [f.uri]: "/admin", [f.method]: "GET" })).status).toBe(403);
      for (const foreign of f.foreign) {
        const res = await get(proxy, {
          ...as.dash,
          [f.uri]: "/dashboard/x",
          [f.method]: "GET",
          [foreign]: "/dashboard/x",
        });
        expect({ foreign, status: res.status }).toEqual({ foreign, status: 403 });
      }
      // the other families' names are never read as the URI
      const elsewhere = Object.values(families).find((o) => o.uri !== f.uri)!;
      expect(
        (await get(proxy, { ...as.dash, [elsewhere.uri]: "/dashboard/x", [elsewhere.method]: "GET" })).status,
      ).toBeOneOf([400, 403]);
      expect((await get(proxy, { ...as.dash, [f.method]: "GET" })).status).toBe(400);
      expect((await get(proxy, { ...as.dash, [f.uri]: "", [f.method]: "GET" })).status).toBe(400);
      expect((await get(proxy, { ...as.dash, [f.uri]: "/dashboard/x" })).status).toBe(400);
      expect((await get(proxy, { ...as.dash, [f.uri]: "/dashboard/x", [f.method]: "GET, POST" })).status).toBe(400);
      // unauthenticated: refused paths answer 403 before any credential is looked at; good ones 401
      expect((await get(proxy, { [f.uri]: "/dashboard/%2e%2e/admin", [f.method]: "GET" })).status).toBe(403);
      expect((await get(proxy, { [f.uri]: "/dashboard/x", [f.method]: "GET" })).status).toBe(401);
    });
  }

  it("envoy: the check request's own method and its ?uri= (path_prefix /auth/http?uri=), untouched by URL parsing", async () => {
    const port = new URL(apps.envoy!.url).port;
    const check = (target: string, method = "GET", headers: Record<string, string> = as.dash) =>
      send(Number(port), { target, method, headers });
    expect((await check("/auth/http?uri=/dashboard/x?y=1&z=/admin")).status).toBe(200);
    expect((await check("/auth/http?uri=/dashboard/x", "POST")).status).toBe(403);
    expect((await check("/auth/http?uri=/dashboard/x", "DELETE")).status).toBe(403);
    expect((await check("/auth/http?uri=/other/x", "DELETE", as.most)).status).toBe(200);
    // our server resolves `..` in a path before any handler sees it, but not in a query
    expect((await check("/auth/http?uri=/dashboard/x/../../admin/secret")).status).toBe(403);
    expect((await check("/auth/http?uri=/dashboard/x/..\\..\\admin")).status).toBe(403);
    expect((await check("/auth/http?uri=//admin/secret", "GET", as.most)).status).toBe(403);
    expect((await check("/auth/http?uri=/dashboard/x#/../../admin")).status).toBe(403);
    expect((await check("/auth/http")).status).toBe(400);
    expect((await check("/auth/http?x=1&uri=/dashboard/x")).status).toBe(400);
    // a client header Envoy was told to pass on is never read: it fails closed
    expect(
      (await check("/auth/http?uri=/dashboard/x", "GET", { ...as.dash, "x-original-uri": "/dashboard/x" })).status,
    ).toBe(403);
    expect(
      (await check("/auth/http?uri=/dashboard/x", "GET", { ...as.dash, "x-forwarded-method": "GET" })).status,
    ).toBe(403);
  });

  it("counts every refusal by reason and logs each reason at most once in 10 s", async () => {
    const { app, lines } = apps.nginx!;
    const counter = app.core.metrics.counter("gatehouse_forward_auth_refusals_total", "");
    const before = counter.get({ reason: "dot-segment" });
    const logged = () =>
      lines.filter((l) => l.includes("forward auth refused") && l.includes("reason=dot-segment")).length;
    const linesBefore = logged();
    for (let i = 0; i < 50; i++)
      expect(
        (
          await get("nginx", {
            ...as.dash,
            "x-original-uri": `/dashboard/${i}/../../admin`,
            "x-original-method": "GET",
          })
        ).status,
      ).toBe(403);
    expect(counter.get({ reason: "dot-segment" }) - before).toBe(50);
    expect(logged() - linesBefore).toBeLessThanOrEqual(1);
    expect(await app.core.metrics.render()).toContain('gatehouse_forward_auth_refusals_total{reason="dot-segment"} ');
  });

  it("answers a 64 KB original URI with 431 and a throttled client with 403 and Retry-After", async () => {
    expect(
      (
        await get("nginx", {
          ...as.dash,
          "x-original-uri": `/dashboard/${"a".repeat(64 * 1024)}`,
          "x-original-method": "GET",
        })
      ).status,
    ).toBe(431);
    const { app } = apps.caddy!;
    await app.core.credentials.create({ type: "http", username: "throttled-direct", password: "right-password" });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 12; i++) {
      last = await get("caddy", {
        authorization: basic("throttled-direct", `wrong-${i}`),
        "x-forwarded-uri": "/x",
        "x-forwarded-method": "GET",
      });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([...Array(10).fill(401), 403, 403]);
    expect(last!.headers.get("retry-after")).toBe("60");
    expect((await last!.json()).error).toBe("rate_limited");
    // the device data API keeps its 429
    expect(
      (
        await fetch(`${apps.caddy!.url}/api/v1/data/x`, {
          headers: { authorization: basic("throttled-direct", "again-wrong") },
        })
      ).status,
    ).toBe(429);
  });
});

describe("the client address, resolved once by the web server", () => {
  let trusting: { app: App; url: string; lines: string[] };
  let plain: { app: App; url: string; lines: string[] };
  beforeAll(async () => {
    trusting = await testApp(["--opcua-port", "off", "--mqtt-port", "off", "--trusted-proxies", "127.0.0.1"]);
    plain = await testApp(["--opcua-port", "off", "--mqtt-port", "off"]);
  });
  afterAll(async () => {
    await trusting.app.stop();
    await plain.app.stop();
  });

  const failDevice = (url: string, from: string, headers: Record<string, string>) =>
    send(Number(new URL(url).port), {
      target: "/api/v1/data/x",
      from,
      headers: { authorization: basic("nobody-here", "x"), ...headers },
    });

  it("reads X-Forwarded-For only from a trusted proxy, and X-Real-IP never (device API)", async () => {
    await failDevice(trusting.url, "127.0.0.1", {
      "x-forwarded-for": "6.6.6.6, 198.51.100.7",
      "x-real-ip": "10.0.0.1",
    });
    await failDevice(trusting.url, "127.0.0.2", { "x-forwarded-for": "198.51.100.8" });
    await failDevice(trusting.url, "127.0.0.1", { "x-real-ip": "198.51.100.9" });
    await failDevice(plain.url, "127.0.0.1", { "x-forwarded-for": "198.51.100.10" });
    expect(trusting.app.core.loginLog.recent(3).map((f) => f.remote)).toEqual([
      "127.0.0.1",
      "127.0.0.2",
      "198.51.100.7",
    ]);
    expect(plain.app.core.loginLog.recent(1).map((f) => f.remote)).toEqual(["127.0.0.1"]);
  });

  it("gives the admin sign-in throttle the real client too", async () => {
    for (const [target, expected] of [
      [trusting, "198.51.100.20"],
      [plain, "127.0.0.1"],
    ] as const) {
      const form = await fetch(`${target.url}/login`);
      const cookie = form.headers.get("set-cookie")!.split(";")[0]!;
      const csrf = (await form.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
      await fetch(`${target.url}/login`, {
        method: "POST",
        redirect: "manual",
        headers: {
          cookie,
          "content-type": "application/x-www-form-urlencoded",
          "x-forwarded-for": "198.51.100.20",
          origin: target.url,
        },
        body: new URLSearchParams({ _csrf: csrf, username: "admin", password: "not-the-admin-password" }),
      });
      await eventually(() =>
        expect(target.lines.find((l) => l.includes("admin sign-in failed"))).toContain(`remote=${expected}`),
      );
    }
  });
});
