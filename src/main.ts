#!/usr/bin/env bun
import { exitCodes } from "./cli/exit-codes.ts";
import { drained, oneLine } from "./cli/output.ts";
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
    case "onboarding":
      return (await import("./cli/onboarding.ts")).onboardingCli(rest, env);
    case "uplinks":
      return (await import("./cli/uplinks.ts")).uplinksCli(rest, env);
    case "version":
    case "--version":
      process.stdout.write(`gatehouse ${version}\n`);
      return exitCodes.ok;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write((await import("./config.ts")).usage);
      return exitCodes.ok;
    default:
      if (first.startsWith("-")) return (await import("./cli/serve.ts")).serve(argv, env);
      process.stderr.write(`gatehouse: unknown command "${first}"\n\n${(await import("./config.ts")).usage}`);
      return exitCodes.usage;
  }
}

const verb = Bun.argv[2];
main(Bun.argv.slice(2))
  .catch((err) => {
    process.stderr.write(`gatehouse${verb && !verb.startsWith("-") ? ` ${verb}` : ""}: ${oneLine(err)}\n`);
    return exitCodes.failure;
  })
  .then(async (code) => {
    await Promise.all([drained(process.stdout), drained(process.stderr)]);
    process.exit(code);
  });
