import { afterAll, describe, expect, it } from "bun:test";
import { Agent, request as httpRequest } from "node:http";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

afterAll(cleanupTempDirs);

/**
 * Long-lived answers through the real Bun server: Bun.serve closes a connection after 10 s without
 * traffic unless told otherwise, which cut `?wait=` long polls and the page's event stream at ~12 s.
 * One test holds all of them open together for a minute, so the suite pays the minute once.
 */
describe("long-lived routes through the real server", () => {
  it("?wait=60 answers at 60 s (the value, or 404 when none came), /events stays open past 60 s with keep-alive comments, MQTT over WebSocket stays connected", async () => {
    const { app, url } = await testApp(["--opcua-port", "off"]);
    try {
      const { password } = await app.core.credentials.create({ type: "http", username: "poller" });
      const wsUser = await app.core.credentials.create({ type: "mqtt", username: "ws-quiet" });
      const basic = `Basic ${Buffer.from(`poller:${password}`).toString("base64")}`;
      const { cookie } = await signIn(url);
      const started = performance.now();

      // a long poll nothing answers: 404 at the end of the wait, not a hang-up
      const quiet = fetch(`${url}/api/v1/data/plant/quiet?wait=60`, { headers: { authorization: basic } }).then(
        async (r) => ({ status: r.status, body: await r.json(), at: performance.now() - started }),
      );
      // a long poll a value answers late in its wait (after 45 s of silence on the connection)
      const late = fetch(`${url}/api/v1/data/plant/late?wait=60`, { headers: { authorization: basic } }).then(
        async (r) => ({ status: r.status, body: await r.json(), at: performance.now() - started }),
      );
      const publishLate = setTimeout(
        () => void app.core.bus.publish({ topic: "plant/late", payload: Buffer.from("21.5"), retain: false, qos: 0 }),
        45_000,
      );

      // the page's event stream: read what arrives until 65 s have passed
      const events = await fetch(`${url}/events`, { headers: { cookie } });
      expect(events.status).toBe(200);
      const reader = events.body!.getReader();
      let text = "";
      let ended = false;
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return void (ended = true);
          text += new TextDecoder().decode(value);
        }
      })().catch(() => void (ended = true));

      // everything else keeps the short idle timeout; so does a kept-alive connection once its long poll
      // is answered (a value ends this one's 55 s wait early)
      const nudge = setInterval(
        () => void app.core.bus.publish({ topic: "plant/short", payload: Buffer.from("1"), retain: false, qos: 0 }),
        500,
      );
      const shortIdle = Promise.all([
        idleConnection(url, "/healthz", {}),
        idleConnection(url, "/api/v1/data/plant/short?wait=55", { authorization: basic }, () => clearInterval(nudge)),
      ]);

      // MQTT over WebSocket with no MQTT keep-alive at all: only the WebSocket's own pings keep it
      const ws = await connectMqtt(0, {
        protocol: "ws",
        host: "127.0.0.1",
        port: app.address("http")!.port,
        path: "/mqtt",
        username: "ws-quiet",
        password: wsUser.password,
        keepalive: 0,
      } as never);
      let wsClosed = false;
      ws.on("close", () => (wsClosed = true));

      const [q, l] = await Promise.all([quiet, late]);
      clearTimeout(publishLate);
      expect(q.status).toBe(404);
      expect(q.body.error).toBe("not_found");
      expect(q.at).toBeGreaterThanOrEqual(59_000); // it waited the whole minute
      expect(l.status).toBe(200);
      expect(l.body).toMatchObject({ topic: "plant/late", payload: "21.5" });
      expect(l.at).toBeGreaterThanOrEqual(44_000);

      // the short ones were closed by the server long before a minute (Bun's 10 s, in 4 s steps)
      for (const c of await shortIdle) {
        expect(c.status).toBe(200);
        expect(c.closedAfterMs).toBeLessThan(30_000);
      }

      // past 60 s: the stream and the WebSocket are still open
      await new Promise((r) => setTimeout(r, Math.max(0, 65_000 - (performance.now() - started))));
      expect(ended).toBe(false);
      expect(text.match(/^: ping$/gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
      expect(wsClosed).toBe(false);
      expect(ws.connected).toBe(true);
      const got = new Promise<string>((r) => ws.once("message", (_t, p) => r(p.toString())));
      await ws.subscribeAsync("ws/echo");
      await ws.publishAsync("ws/echo", "still here");
      expect(await got).toBe("still here");

      await reader.cancel();
      await reading;
      await ws.endAsync();
    } finally {
      await app.stop();
    }
  }, 120_000);
});

/** idleConnection: one request on a kept-alive connection; resolves when the server closes that connection. */
function idleConnection(
  base: string,
  path: string,
  headers: Record<string, string>,
  answered = () => {},
): Promise<{ status: number; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let status = 0;
    let answeredAt = 0;
    const req = httpRequest(`${base}${path}`, { agent, headers }, (res) => {
      status = res.statusCode ?? 0;
      res.resume();
      res.on("end", () => {
        answeredAt = performance.now();
        answered();
      });
    });
    req.on("socket", (socket) =>
      socket.once("close", () => resolve({ status, closedAfterMs: performance.now() - answeredAt })),
    );
    req.on("error", reject);
    req.end();
  });
}
