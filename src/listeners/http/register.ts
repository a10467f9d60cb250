import type { Core } from "../../core/index.ts";
import { fingerprintOf } from "../../core/onboarding.ts";
import { integrationTypes, isIntegrationType } from "../../core/types.ts";
import { json, problem, readBody, refusal, unknownKeys } from "./responses.ts";

/**
 * createRegistration: onboarding for devices that prefer asking to guessing, at `POST /api/v1/register`
 * (any type: the request becomes an integration of the type it names once the admin approves).
 */
export function createRegistration(core: Core, maxBodyBytes: number) {
  const { credentials } = core;
  /**
   * register: explicit registration for devices that prefer asking to guessing: 423 while onboarding is
   * closed, 202 while the request is pending (poll again), 201 once approved, 409 when the username
   * belongs to an integration with another password.
   */
  const register = async (request: Request, remote: string) => {
    if (request.method !== "POST")
      return problem(405, "method_not_allowed", "POST {username, password, type}", { allow: "POST" });
    const body = await readBody(request, maxBodyBytes);
    if (body instanceof Response) return body;
    let input: { username?: unknown; password?: unknown; type?: unknown };
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "malformed_body", "the body must be JSON: {username, password, type}");
    }
    const extra = input && typeof input === "object" ? unknownKeys(input, ["username", "password", "type"]) : undefined;
    if (extra)
      return problem(400, "invalid_request", `unknown field ${extra}; this route takes username, password, type`);
    const { username, password, type } = input ?? {};
    if (
      typeof username !== "string" ||
      typeof password !== "string" ||
      typeof type !== "string" ||
      !isIntegrationType(type)
    ) {
      return problem(
        400,
        "invalid_request",
        `username and password are strings; type is one of ${integrationTypes.join(", ")}`,
      );
    }
    const meta = { remote, clientId: request.headers.get("user-agent")?.slice(0, 128) };
    // the window or the name may have just been opened or made by the CLI
    const catchingUp = core.fresh();
    if (catchingUp) await catchingUp;
    // a banned client may not ask for onboarding either (verify below refuses it as well)
    if (core.bans.match(username, meta)) {
      credentials.loginRefused(type, username, "banned", meta);
      return refusal("banned");
    }
    if (credentials.findByUsername(username)) {
      const result = await credentials.verify(type, username, password, meta, request.signal);
      if (result.ok) return json({ status: "approved", username }, 201);
      if (result.reason === "throttled" || result.reason === "busy" || result.reason === "abandoned")
        return refusal(result.reason);
      return problem(409, "conflict", "this username belongs to an integration already");
    }
    const outcome = await core.onboarding.consider(type, username, password, meta, type);
    switch (outcome) {
      case "recorded":
      case "pending":
        return json({ status: "pending", username, fingerprint: fingerprintOf(username, password) }, 202);
      case "closed":
      case "type-not-open":
        return problem(423, "locked", "onboarding is closed; ask the admin to open it and try again");
      case "rejected":
        return problem(403, "forbidden", "this request was rejected");
      case "conflict":
        return problem(409, "conflict", "a request for this username with another password is pending");
      case "invalid":
        return problem(400, "invalid_request", "the username or password cannot become an integration");
      default:
        return problem(429, "rate_limited", "too many requests pending; try again later", { "retry-after": "30" });
    }
  };

  return register;
}
