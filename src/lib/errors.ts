export type ErrorCode =
  | "validation"
  | "conflict"
  | "not_found"
  | "unauthorized"
  | "forbidden"
  | "rate_limited"
  | "unavailable";

/**
 * AppError: every failure the core reports on purpose. Each edge maps `code` once
 * (web: status + message, MQTT: CONNACK, OPC UA: StatusCode).
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** field -> message, for inline form errors */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AppError";
  }
}

export class ValidationError extends AppError {
  constructor(fields: Record<string, string>) {
    super("validation", Object.values(fields).join("; "), fields);
  }
}

export class ConflictError extends AppError {
  constructor(message: string, fields: Record<string, string> = {}) {
    super("conflict", message, fields);
  }
}

export class NotFoundError extends AppError {
  constructor(what: string) {
    super("not_found", `${what} not found`);
  }
}

/** StaleLoginError: the integration changed or went away between a login's check and its session. */
export class StaleLoginError extends AppError {
  constructor(username: string) {
    super("conflict", `integration "${username}" changed during login`);
  }
}

/** isDiskFull: SQLite (or the system) answered that the disk holding the data dir is full. */
export function isDiskFull(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "SQLITE_FULL" || e?.code === "ENOSPC" || /disk is full|no space left/i.test(e?.message ?? "");
}

/** isBusy: SQLite answered that another process holds the database lock. */
export function isBusy(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "SQLITE_BUSY" || /database is locked/i.test(e?.message ?? "");
}

/**
 * isPassing: a write that met this can be tried again later (another process holds the lock, or the disk is
 * full): what the appliance writes by itself keeps it in memory for the next flush instead of throwing (found
 * from outside: on a full disk such a throw stopped the whole appliance).
 */
export function isPassing(err: unknown): boolean {
  return isBusy(err) || isDiskFull(err);
}

export const httpStatusOf: Record<ErrorCode, number> = {
  validation: 400,
  conflict: 409,
  not_found: 404,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  unavailable: 503,
};

/**
 * StartRefused: a part refuses to start until a person acts (a file it must not touch: a symlink, a newer
 * release's store). `serve` exits 2 on it (bad configuration), so the service manager does not restart it in a
 * loop; any other start failure is 1.
 */
export class StartRefused extends Error {
  override name = "StartRefused";
}
