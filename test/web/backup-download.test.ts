import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { fstatSync, openSync, closeSync, readdirSync, readlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { App } from "../../src/app.ts";
import { maxDownloads } from "../../src/web/backup.tsx";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { eventually } from "../helpers/wait.ts";

// The browser's database backup over a real HTTP connection to the running appliance (through the
// accept front), read by a raw socket that takes the head and then reads as slowly as it likes: the
// Content-Length the README promises, the at-most-`maxDownloads` limit while copies are held, the 0600
// mode of each copy, and nothing left in the data dir after a complete, an aborted and concurrent ones.

let app: App;
let url: string;
let dir: string;
let cookie: string;
let csrf: string;

beforeAll(async () => {
  ({ app, url, dir } = await testApp());
  // 10 000 integrations with 2 KB descriptions: a database (~25 MB) far larger than the socket buffers,
  // so a reader that stops reading holds its download open
  app.core.db.$client.run(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
     INSERT INTO integrations (username, type, description, password_hash, created_at, updated_at)
     SELECT 'dev-' || i, 'mqtt', hex(randomblob(1000)), 'x', 0, 0 FROM n`,
  );
  ({ cookie, csrf } = await signIn(url));
}, 60_000);
afterAll(async () => {
  await app?.stop();
  cleanupTempDirs();
});

/** Download: one POST on its own socket; `head` resolves with the status line and headers, then it reads nothing more until `readAll`. */
interface Download {
  socket: Socket;
  head: Promise<{ status: number; headers: Map<string, string>; bodyStart: Buffer }>;
  readAll(): Promise<Buffer>;
}

function download(base = url, session = { cookie, csrf }): Download {
  const { cookie, csrf } = session;
  const port = Number(new URL(base).port);
  const body = `_csrf=${encodeURIComponent(csrf)}`;
  const socket = connect(port, "127.0.0.1");
  socket.write(
    `POST /settings/backup/database HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${base}\r\nCookie: ${cookie}\r\n` +
      `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  const chunks: Buffer[] = [];
  const head = new Promise<{ status: number; headers: Map<string, string>; bodyStart: Buffer }>((resolve, reject) => {
    const onData = (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      const end = all.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause(); // the throttled reader: nothing more is read until readAll
      const lines = all.subarray(0, end).toString("latin1").split("\r\n");
      const headers = new Map(
        lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
      );
      resolve({ status: Number(lines[0]!.split(" ")[1]), headers, bodyStart: all.subarray(end + 4) });
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
  const readAll = async () => {
    const { bodyStart } = await head;
    const rest: Buffer[] = [bodyStart];
    return new Promise<Buffer>((resolve) => {
      socket.on("data", (d: Buffer) => rest.push(d));
      socket.on("end", () => resolve(Buffer.concat(rest)));
      socket.resume();
    });
  };
  return { socket, head, readAll };
}

/** copies: the download copies this process holds open (unlinked: only /proc/self/fd still sees them). */
function copies(folder = dir): { fd: string; target: string }[] {
  const out: { fd: string; target: string }[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${folder}/.gatehouse.db.download-`)) out.push({ fd, target });
    } catch {
      // closed while listed
    }
  }
  return out;
}

const leftovers = (folder = dir) => readdirSync(folder).filter((n) => n.includes("download"));

describe("the browser's database backup over HTTP", () => {
  it("carries its Content-Length and arrives whole as a SQLite file", async () => {
    const d = download();
    const { status, headers } = await d.head;
    expect(status).toBe(200);
    expect(headers.get("transfer-encoding")).toBeUndefined();
    expect(headers.get("content-type")).toBe("application/vnd.sqlite3");
    expect(headers.get("content-disposition")).toMatch(/^attachment; filename="gatehouse-\d{8}-\d{6}\.db"$/);
    const length = Number(headers.get("content-length"));
    expect(length).toBeGreaterThan(20_000_000);
    const body = await d.readAll();
    expect(body.length).toBe(length);
    expect(body.subarray(0, 16).toString("latin1")).toBe("SQLite format 3\0");
    await eventually(() => copies().length === 0);
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it("needs the page's Origin (or a same-site Referer) besides the CSRF token: attack3 F4's post without one is 403", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${url}/settings/backup/database`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", ...headers },
        body: `_csrf=${encodeURIComponent(csrf)}`,
      });
    for (const headers of [
      {} as Record<string, string>,
      { origin: "null" },
      { origin: "http://evil.example" },
      { referer: "http://evil.example/" },
    ])
      expect([headers, (await post(headers)).status]).toEqual([headers, 403]);
    const byReferer = await post({ referer: `${url}/settings/backup` });
    expect(byReferer.status).toBe(200);
    await byReferer.arrayBuffer();
    await eventually(() => copies().length === 0);
  }, 60_000);

  it(`holds at most ${maxDownloads} copies at once, each 0600; an aborted one frees its place; none is left behind`, async () => {
    const held = Array.from({ length: maxDownloads }, () => download());
    for (const d of held) expect((await d.head).status).toBe(200);
    // both readers have stopped reading: both copies are still open, unlinked, owner-only
    const open = copies();
    expect(new Set(open.map((c) => c.target)).size).toBe(maxDownloads);
    for (const c of open) {
      expect(c.target).toEndWith(" (deleted)");
      const fd = openSync(`/proc/self/fd/${c.fd}`, "r");
      try {
        expect(fstatSync(fd).mode & 0o777).toBe(0o600);
      } finally {
        closeSync(fd);
      }
    }
    expect(leftovers()).toEqual([]);
    // a third while both are held: refused, and it made no copy
    const third = download();
    expect((await third.head).status).toBe(429);
    third.socket.destroy();
    expect(new Set(copies().map((c) => c.target)).size).toBe(maxDownloads);
    // one reader goes away mid-body: its copy is closed, and a new download takes its place
    held[0]!.socket.destroy();
    await eventually(() => new Set(copies().map((c) => c.target)).size === maxDownloads - 1, 10_000);
    const next = download();
    expect((await next.head).status).toBe(200);
    // the others read to the end, whole
    for (const d of [held[1]!, next]) {
      const length = Number((await d.head).headers.get("content-length"));
      expect((await d.readAll()).length).toBe(length);
    }
    await eventually(() => copies().length === 0, 10_000);
    expect(leftovers()).toEqual([]);
  }, 90_000);
});

describe("a small database (sent whole before the server's next tick)", () => {
  it("is unlinked all the same: nothing stays in the data dir", async () => {
    const small = await testApp();
    try {
      const session = await signIn(small.url);
      for (let i = 0; i < 3; i++) {
        const d = download(small.url, session);
        const { status, headers } = await d.head;
        expect(status).toBe(200);
        expect((await d.readAll()).length).toBe(Number(headers.get("content-length")));
      }
      await eventually(() => leftovers(small.dir).length === 0 && copies(small.dir).length === 0);
    } finally {
      await small.app.stop();
    }
  }, 60_000);
});
