import { afterAll, describe, expect, it } from "bun:test";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { buildFor, runBinary } from "../helpers/binary.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

afterAll(cleanupTempDirs);

/**
 * Industrial PCs and gateways are arm64: the arm64 binary, under Debian's qemu-user
 * (`qemu-aarch64 -L /usr/aarch64-linux-gnu`, packages qemu-user and libc6-arm64-cross, installed by
 * .ci/run), starts, serves the page, admits an MQTT login and stops on SIGTERM with exit 0.
 */
describe("the linux-arm64 binary under qemu", () => {
  it("serves, admits a login and stops cleanly", async () => {
    const binary = await buildFor("linux-arm64");
    const dir = tempDir("gatehouse-arm64-");
    const running = await runBinary(
      binary,
      dir,
      [
        "--data-dir",
        `${dir}/data`,
        "--bind",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "off",
        "--mqtt-port",
        "0",
        "--mqtts-port",
        "off",
        "--opcua-port",
        "off",
      ],
      { HOME: dir, GATEHOUSE_ADMIN_PASSWORD: "arm64-admin-pass" },
      { prefix: ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"], readyTimeoutMs: 60_000 },
    );
    try {
      const base = `http://127.0.0.1:${running.ports.http}`;
      const { cookie, csrf } = await signIn(base, "admin", "arm64-admin-pass");
      const created = await (
        await fetch(`${base}/api/v1/integrations`, {
          method: "POST",
          headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
          body: JSON.stringify({ type: "mqtt", username: "arm-device" }),
        })
      ).json();
      const c = await connectMqtt(running.ports.mqtt!, {
        username: "arm-device",
        password: created.password,
        connectTimeout: 30_000,
      });
      expect(c.connected).toBe(true);
      await c.endAsync();
    } finally {
      expect(await running.stop("SIGTERM")).toBe(0);
    }
  }, 180_000);
});
