import { afterAll, describe, expect, it } from "bun:test";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { startServe } from "../helpers/serve.ts";

afterAll(cleanupTempDirs);

describe("serve with the HTTP port off", () => {
  it("a first start without an admin says how to make one instead of failing on the missing setup link", async () => {
    // every port but MQTT off: before, the setup link's address was read from a listener that does not exist (exit 1)
    const serve = startServe(tempDir(), ["--http-port", "off", "--mqtt-port", "0"]);
    try {
      await serve.waitFor(/^info ready /);
      expect(serve.lines.join("\n")).toContain("no admin yet and no HTTP port for a setup link");
      expect(serve.port("mqtt")).toBeGreaterThan(0);
    } finally {
      serve.proc.kill("SIGTERM");
    }
    expect(await serve.proc.exited).toBe(0);
  }, 60_000);
});
