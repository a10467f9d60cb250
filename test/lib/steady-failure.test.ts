import { describe, expect, it } from "bun:test";
import { steadyFailure } from "../../src/lib/logger.ts";
import { memoryLog } from "../helpers/app.ts";

describe("steadyFailure", () => {
  it("logs a repeating failure when it starts, then at most every `everyMs` with the count, and once when it ends", () => {
    const { log, lines } = memoryLog();
    const quiet = steadyFailure(log, "flush", 60_000);
    for (let i = 0; i < 5; i++) quiet.failed(new Error("disk full"));
    expect(lines).toEqual(['error flush failed err="disk full"']);
    quiet.ok();
    quiet.ok();
    expect(lines.slice(1)).toEqual(["info flush works again failures=5"]);
    // every failure past the interval (0 here) says how many so far; a new run of failures starts again
    const loud = steadyFailure(log, "sweep", 0);
    loud.failed(new Error("a"));
    loud.failed(new Error("b"));
    loud.ok();
    loud.failed(new Error("c"));
    expect(lines.slice(2)).toEqual([
      'error sweep failed err="a"',
      'error sweep still failing err="b" failures=2',
      "info sweep works again failures=2",
      'error sweep failed err="c"',
    ]);
  });
});
