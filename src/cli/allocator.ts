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
 * with them set. An operator who sets either variable keeps what they set, and no restart happens.
 */

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
    file: execPath,
    args: compiled ? [execPath, ...args] : [execPath, ...execArgv, argv[1]!, ...args],
    env: next,
  };
}
