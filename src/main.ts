#!/usr/bin/env bun
import { admin } from "./cli/admin.ts";
import { exitCodes } from "./cli/exit-codes.ts";
import { integrationsCli } from "./cli/integrations.ts";
import { serve } from "./cli/serve.ts";
import { version } from "./app.ts";
import { usage } from "./config.ts";

/** main: picks the verb (default `serve`) and turns its result into the exit code. */
async function main(argv: string[]): Promise<number> {
  const env = process.env;
  const [first, ...rest] = argv;
  switch (first) {
    case undefined:
      return serve([], env);
    case "serve":
      return serve(rest, env);
    case "admin":
      return admin(rest, env);
    case "integrations":
      return integrationsCli(rest, env);
    case "version":
    case "--version":
      process.stdout.write(`gatehouse ${version}\n`);
      return exitCodes.ok;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage);
      return exitCodes.ok;
    default:
      if (first.startsWith("-")) return serve(argv, env);
      process.stderr.write(`gatehouse: unknown command "${first}"\n\n${usage}`);
      return exitCodes.usage;
  }
}

main(Bun.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stdout.write(`error fatal ${JSON.stringify(String(err?.stack ?? err))}\n`);
    process.exit(exitCodes.failure);
  },
);
