import type { LoginFailure } from "../../core/types.ts";
import { jsonResponse, problem } from "../../lib/http.ts";

export { problem } from "../../lib/http.ts";

/** json: a device route's answer (never cached: it is about now). */
export const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  jsonResponse(body, status, { "cache-control": "no-store", ...headers });

const challenge = { "www-authenticate": 'Basic realm="gatehouse", charset="UTF-8"' };

/** statusFor: what each refusal tells a device to do. */
const statusFor: Record<LoginFailure, 401 | 403 | 429 | 503> = {
  "unknown-user": 401,
  "wrong-password": 401,
  deactivated: 403,
  "wrong-type": 403,
  stale: 403,
  throttled: 429,
  banned: 403,
  "unsupported-protocol": 401,
  "client-id-in-use": 403,
  "connection-limit": 503,
  busy: 503,
  abandoned: 503, // the client has gone; nobody reads it
  anonymous: 401,
  "certificate-user": 401,
  "insecure-token": 401,
  "certificate-rejected": 403,
};

/** busyRetrySeconds: what a 503 for a full password-check line tells the device to wait before it tries again. */
export const busyRetrySeconds = 10;

/** refusal: a refused login as a device hears it (401 with the Basic challenge, 403, 429 and 503 with Retry-After). */
export function refusal(reason: LoginFailure): Response {
  const status = statusFor[reason];
  if (status === 401)
    return problem(
      401,
      "unauthorized",
      "missing, unknown or wrong credentials (HTTP Basic auth of an HTTP integration)",
      challenge,
    );
  if (status === 429)
    return problem(429, "rate_limited", "too many failed logins; try again later", { "retry-after": "60" });
  if (status === 503)
    return problem(503, "unavailable", "too many logins are being checked now; try again in a moment", {
      "retry-after": String(busyRetrySeconds),
    });
  return problem(
    status,
    "forbidden",
    reason === "deactivated"
      ? "this integration is deactivated"
      : reason === "banned"
        ? "this client is banned"
        : "this integration may not use HTTP",
  );
}

/** unknownKeys: the keys of a JSON object a route does not take (named in its 400, at most 10, each cut to 64). */
export function unknownKeys(value: object, allowed: readonly string[]): string | undefined {
  const extra = Object.keys(value).filter((k) => !allowed.includes(k));
  if (extra.length === 0) return undefined;
  const names = extra.slice(0, 10).map((k) => (k.length > 64 ? `${k.slice(0, 64)}…` : k));
  return `${names.join(", ")}${extra.length > 10 ? " and more" : ""}`;
}

/** readBody: the request body up to `maxBytes` (413 past it, by its declared length before reading). */
export async function readBody(request: Request, maxBytes: number): Promise<Buffer | Response> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  const tooLarge = () => problem(413, "payload_too_large", `body larger than ${maxBytes} bytes`);
  if (declared > maxBytes) return tooLarge();
  const body = Buffer.from(await request.arrayBuffer());
  return body.length > maxBytes ? tooLarge() : body;
}
