import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];
let hooked = false;

/**
 * scratchDir: a temporary folder removed when this process exits (a benchmark leaves no data dirs,
 * PKIs or 100 MB binaries behind in /tmp). A server killed with SIGTERM exits cleanly for this.
 */
export function scratchDir(prefix: string): string {
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    });
    if (process.listenerCount("SIGTERM") === 0) process.on("SIGTERM", () => process.exit(0));
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
