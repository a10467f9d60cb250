/**
 * The runtime's memory allocator, set for a server that goes idle hundreds of times a second.
 *
 * Bun 1.4.4's allocator (its fork of mimalloc 3) hands memory back to the system at every point where a
 * thread is about to block: the free space inside pages still in use ("holes"), and whole free pages after
 * 100 ms. A server blocks all the time (the event loop between reads, the outbox writer at each fsync), so
 * under load the same memory went back and was faulted in again a few hundred times a second: ~0.3 page
 * faults and ~600 `madvise` calls per forwarded message, a third of the appliance's CPU in the kernel
 * (7 Dec 2026, README "Memory and the allocator"). Without hole purging, and with whole free pages handed
 * back after 1 s (upstream mimalloc's delay), the appliance spends ~15 % less CPU per forwarded message and
 * keeps ~30 MiB more when idle after a load.
 *
 * The allocator reads its settings once, as the process starts, from the environment; so `serve` starts
 * itself again in place (execve: the same process id, the same open files, before anything is listening)
 * with them set. An operator who sets either variable keeps what they set, and no restart happens. What it
 * starts is the image this process runs (`/proc/self/exe`), never a path looked up again: found from
 * outside, a binary deleted in the ~0.2 s before had the kernel's "<path> (deleted)" run, a file anyone
 * with the folder could plant, with the appliance's arguments and environment.
 */
import { existsSync } from "node:fs";

/** allocatorEnv: what `serve` sets when the operator set neither */
export const allocatorEnv = { MIMALLOC_PURGE_HOLES: "0", MIMALLOC_PURGE_DELAY: "1000" } as const;

/** Relaunch: the arguments and environment to start the same command again with */
export interface Relaunch {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * relaunch: how to start `serve` again with `allocatorEnv`, or undefined when there is no need (another
 * verb, help asked, or the operator set one of the variables: that includes the process started by this).
 * `argv` is the process's whole argv: the runtime, the script (not in the compiled binary, whose `main` is
 * under `/$bunfs/`), then the verb and its options.
 */
export function relaunch(
  argv: readonly string[],
  self: string,
  execPath: string,
  execArgv: readonly string[],
  main: string,
  env: Readonly<Record<string, string | undefined>>,
  isServe: (args: readonly string[]) => boolean,
): Relaunch | undefined {
  if (Object.keys(allocatorEnv).some((k) => env[k] !== undefined)) return undefined;
  const args = argv.slice(2);
  if (!isServe(args)) return undefined;
  const compiled = main.startsWith("/$bunfs/");
  const next: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) next[k] = v;
  Object.assign(next, allocatorEnv);
  return {
    file: self,
    args: compiled ? [execPath, ...args] : [execPath, ...execArgv, argv[1]!, ...args],
    env: next,
  };
}

/** the kernel's limits on what an exec takes: one string (MAX_ARG_STRLEN, its NUL counted), and all of them */
const maxExecString = 128 * 1024;
const maxExecTotal = 1024 * 1024;

/**
 * tooLargeToExec: why the kernel would refuse these arguments and environment (E2BIG), if it would. The
 * runtime hands them on as UTF-8, so a byte that is not UTF-8 comes back as three (found from outside: a
 * variable of 100 000 such bytes became 300 000, over the limit of one string).
 */
export function tooLargeToExec(r: Relaunch): string | undefined {
  let total = 0;
  for (const s of [...r.args, ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`)]) {
    const n = Buffer.byteLength(s) + 1;
    if (n > maxExecString) return `an argument or environment variable of ${n} bytes (at most ${maxExecString})`;
    total += n + 8;
  }
  return total > maxExecTotal ? `${total} bytes of arguments and environment (at most ${maxExecTotal})` : undefined;
}

/** why `serve` runs on the runtime's defaults although it tried to start again (for its log) */
let notStarted: string | undefined;

/** startedAgainNot: why `serve` did not start again with `allocatorEnv`, when it tried and could not */
export const startedAgainNot = () => notStarted;

/** selfImage: what to start again: the running image (Linux), else the runtime's path */
export const selfImage = (execPath: string) => (existsSync("/proc/self/exe") ? "/proc/self/exe" : execPath);

/**
 * startAgain: execve into `r`; returns only if that could not be done (then `startedAgainNot` says why, for
 * the log, and the appliance runs on the runtime's defaults as before). The runtime's one-off warning that
 * execve is experimental is kept off stderr: log lines are the appliance's only output there.
 */
export function startAgain(r: Relaunch): void {
  const tooLarge = tooLargeToExec(r);
  if (tooLarge) {
    notStarted = tooLarge;
    return;
  }
  const listeners = process.listeners("warning");
  process.removeAllListeners("warning");
  try {
    if (!process.execve) throw new Error("this runtime has no execve");
    process.execve(r.file, r.args, r.env);
  } catch (err) {
    notStarted = (err as Error).message ?? String(err);
  } finally {
    // the warning is emitted on the next tick: what listened before listens again after it
    setImmediate(() => {
      for (const l of listeners) process.on("warning", l as (w: Error) => void);
    });
  }
}
