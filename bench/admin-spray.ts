/**
 * bun run bench:admin: the real admin signs in through the sign-in form while 50 addresses guess the
 * admin's password (5 guesses each, 250 at once, the pair limit's worth), against the same sign-in with
 * nobody guessing (ratio). Real HTTP to the appliance in its own process, default argon2id (64 MiB);
 * each guesser and the admin have their own loopback address (127.0.1.x, 127.0.0.2), as the server
 * sees them. Also the server's peak RSS. The goal: the admin is in within 1 s during the spray.
 */
import { request, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { lineReader, statusMiB, stop } from "./lib/procs.ts";
import { fmt, median, report } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ADDRESSES = Number(process.env.BENCH_GUESSERS ?? 50);
const GUESSES = 5;
const ADMIN_PASSWORD = "bench-admin-password";

const proc = Bun.spawn(["bun", "bench/admin-spray-server.ts", join(scratchDir("gatehouse-admin-spray-"), "data")], {
  stdout: "pipe",
  stderr: "inherit",
});
const out = lineReader(proc.stdout);
const port = Number((await out.until(/ready (\d+)\n/))[1]);
out.drain();

type Answer = { status: number; headers: IncomingHttpHeaders; body: string };
/** http: one request from a chosen local address (fetch cannot pick one); a cut connection is status 0. */
function http(
  from: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method,
        localAddress: from,
        headers: body ? { ...headers, "content-length": String(Buffer.byteLength(body)) } : headers,
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on("error", () => resolve({ status: 0, headers: {}, body: "" }));
    req.end(body);
  });
}

/** loginForm: what a browser does first: the form, its one-time field and cookie. */
async function loginForm(from: string) {
  const page = await http(from, "GET", "/login");
  const cookie = String(page.headers["set-cookie"]?.[0] ?? "").split(";")[0]!;
  const csrf = page.body.match(/name="_csrf" value="([^"]+)"/)![1]!;
  return { cookie, csrf };
}

function post(from: string, form: { cookie: string; csrf: string }, password: string, username = "admin") {
  const body = new URLSearchParams({ _csrf: form.csrf, username, password }).toString();
  return http(
    from,
    "POST",
    "/login",
    { cookie: form.cookie, "content-type": "application/x-www-form-urlencoded", origin: `http://127.0.0.1:${port}` },
    body,
  );
}

/** adminSignIn: the form and the POST, timed from the POST; 303 is signed in. */
async function adminSignIn(from: string): Promise<number> {
  const form = await loginForm(from);
  const t = performance.now();
  const res = await post(from, form, ADMIN_PASSWORD);
  if (res.status !== 303) throw new Error(`admin sign-in from ${from}: ${res.status}`);
  return performance.now() - t;
}

// Quiet: nobody guessing (the first one pays nothing extra: every sign-in is a full argon2id check).
const quiet: number[] = [];
for (let i = 0; i < 5; i++) quiet.push(await adminSignIn(`127.0.0.${2 + i}`));
const rssBefore = await statusMiB(proc.pid, "VmRSS");

// The spray: every guesser fetches the form once, then sends its 5 guesses at once.
const guessers = Array.from({ length: ADDRESSES }, (_, i) => `127.0.1.${i + 1}`);
const forms = await Promise.all(guessers.map(loginForm));
let firstAnswer!: () => void;
const answered = new Promise<void>((r) => (firstAnswer = r));
const statuses: number[] = [];
const sprayStart = performance.now();
const spray = guessers.flatMap((from, a) =>
  Array.from({ length: GUESSES }, (_, g) =>
    post(from, forms[a]!, `guess-${a}-${g}`).then((res) => {
      statuses.push(res.status);
      firstAnswer();
    }),
  ),
);
// The admin comes while the spray is under way: its first guesses answered, the rest waiting.
await answered;
const during = await adminSignIn("127.0.0.20");
const arrivedAfter = statuses.length;
await Promise.all(spray);
const sprayMs = performance.now() - sprayStart;
const peak = await statusMiB(proc.pid, "VmHWM");
const rssAfter = await statusMiB(proc.pid, "VmRSS");
await stop(proc);

const count = (s: number) => statuses.filter((x) => x === s).length;
const q = median(quiet);
console.log(
  `admin sign-in while ${ADDRESSES} addresses send ${ADDRESSES * GUESSES} guesses at once (default argon2id, 64 MiB)\n`,
);
console.log(`| measure | value |\n| --- | --- |`);
console.log(`| admin sign-in, nobody guessing (median of 5) | ${fmt(q)} ms |`);
console.log(`| admin sign-in during the spray (from a clean address) | ${fmt(during)} ms |`);
console.log(`| guesses answered before the admin arrived / while it signed in | ${arrivedAfter} |`);
console.log(`| guesses: 401 wrong / 429 line full or limit / cut | ${count(401)} / ${count(429)} / ${count(0)} |`);
console.log(`| the whole spray answered after | ${fmt(sprayMs / 1000, 1)} s |`);
console.log(
  `| server RSS before / after the spray, peak | ${fmt(rssBefore)} / ${fmt(rssAfter)} MiB, ${fmt(peak)} MiB |\n`,
);
report([
  {
    bench: "admin spray",
    measure: `admin sign-in while ${ADDRESSES} addresses send ${ADDRESSES * GUESSES} guesses`,
    baselineName: "the same, nobody guessing",
    baseline: `${fmt(q)} ms`,
    gatehouse: `${fmt(during)} ms`,
    ratio: q / during,
    goal: "< 1 s",
  },
  {
    bench: "admin spray",
    measure: "the same: server peak RSS",
    baselineName: "RSS before the spray",
    baseline: `${fmt(rssBefore)} MiB`,
    gatehouse: `${fmt(peak)} MiB`,
    ratio: rssBefore / peak,
  },
]);
process.exit(0);
