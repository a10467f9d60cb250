#!/usr/bin/env bun
import { relaunch, selfImage, startAgain } from "./cli/allocator.ts";
import { exitCodes } from "./cli/exit-codes.ts";
import { asked, isServe, usage, verbHelp } from "./cli/usage.ts";
import { drained, oneLine, saidText, watchWrites } from "./cli/output.ts";
import { version } from "./version.ts";

/**
 * main: picks the verb (default `serve`) and turns its result into the exit code. Verbs are loaded
 * on demand: `gatehouse integrations list` needs neither the broker nor the web server.
 */
async function main(argv: string[]): Promise<number> {
  const env = process.env;
  const [first, ...rest] = argv;
  switch (first) {
    case undefined:
      return (await import("./cli/serve.ts")).serve([], env);
    case "serve":
      return (await import("./cli/serve.ts")).serve(rest, env);
    case "admin":
      return (await import("./cli/admin.ts")).admin(rest, env);
    case "integrations":
      return (await import("./cli/integrations.ts")).integrationsCli(rest, env);
    case "backup":
    case "restore":
    case "export":
    case "import":
      return (await import("./cli/backup.ts")).dataCli(first, rest, env);
    case "bans":
      return (await import("./cli/bans.ts")).bansCli(rest, env);
    case "onboarding":
      return (await import("./cli/onboarding.ts")).onboardingCli(rest, env);
    case "uplinks":
      return (await import("./cli/uplinks.ts")).uplinksCli(rest, env);
    case "version":
    case "--version": {
      if (rest.some(asked)) process.stdout.write(verbHelp("version"));
      else if (rest.length > 0) {
        process.stderr.write(`gatehouse version: unexpected argument "${saidText(rest[0]!)}"\n${verbHelp("version")}`);
        return exitCodes.usage;
      } else process.stdout.write(`gatehouse ${version}\n`);
      return exitCodes.ok;
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(await fullUsage());
      return exitCodes.ok;
    default:
      if (first.startsWith("-")) return (await import("./cli/serve.ts")).serve(argv, env);
      process.stderr.write(`gatehouse: unknown command "${saidText(first)}"\n\n${await fullUsage()}`);
      return exitCodes.usage;
  }
}

/** fullUsage: what `gatehouse --help` prints: every verb, then serve's options */
async function fullUsage(): Promise<string> {
  return usage((await import("./config.ts")).serveUsage);
}

// the allocator's settings are read as the process starts: `serve` starts again in place with them (see
// cli/allocator.ts); if that cannot be done it runs on the runtime's defaults, as before, and logs why
const again = relaunch(
  Bun.argv,
  selfImage(process.execPath),
  process.execPath,
  process.execArgv,
  Bun.main,
  process.env,
  isServe,
);
if (again) startAgain(again);

const verb = Bun.argv[2];
watchWrites(process.stdout);
watchWrites(process.stderr);
main(Bun.argv.slice(2))
  .catch((err) => {
    process.stderr.write(
      `${saidText(`gatehouse${verb && !verb.startsWith("-") ? ` ${verb}` : ""}: ${oneLine(err)}`)}\n`,
    );
    return exitCodes.failure;
  })
  .then(async (code) => {
    process.exitCode = code; // whatever happens to the output below, the verb's answer is the exit code
    const failed = await drained(process.stdout);
    // Output that did not reach its reader whole (a full disk, /dev/full, a reader that went away: EPIPE) is a
    // failure of the system: exit 1, so `gatehouse export > /backup/fleet.json && echo ok` cannot say ok.
    // (`serve`'s log lines are not its output: a lost one does not make its clean stop a failure; its
    // `--help` is output)
    if (failed && code === exitCodes.ok && !isServe(Bun.argv.slice(2))) {
      process.stderr.write(
        `${saidText(`gatehouse${verb ? ` ${verb}` : ""}: cannot write the output: ${oneLine(failed)}`)}\n`,
      );
      code = exitCodes.failure;
    }
    process.exitCode = code;
    await drained(process.stderr);
    process.exit(code);
  });
