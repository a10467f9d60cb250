import { describe, expect, it } from "bun:test";
import {
  clientAddress,
  ipBytes,
  formatIp,
  noTrustedProxies,
  parseTrustedProxies,
} from "../../src/lib/client-address.ts";
import { ConfigError } from "../../src/lib/options.ts";

describe("trusted proxies and the client address", () => {
  const trusted = parseTrustedProxies("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8");

  it("parses addresses and CIDR blocks, IPv4-mapped ones as IPv4, and refuses anything else by name", () => {
    expect(trusted.text).toEqual(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]);
    expect(parseTrustedProxies("::ffff:192.168.0.0/112").text).toEqual(["192.168.0.0/16"]);
    expect(parseTrustedProxies(undefined)).toBe(noTrustedProxies);
    expect(parseTrustedProxies("none")).toBe(noTrustedProxies);
    for (const bad of [
      "localhost",
      "10.0.0.0/33",
      "::1/129",
      "1.2.3",
      "10.0.0.1:80",
      "[::1]",
      "127.0.0.1,,10.0.0.1",
      "fe80::1%eth0",
      "10.0.0.0/-1",
    ]) {
      expect(() => parseTrustedProxies(bad)).toThrow(ConfigError);
    }
  });

  it("formats addresses one way (RFC 5952), so one client has one throttle key", () => {
    for (const [input, text] of [
      ["::ffff:127.0.0.1", "127.0.0.1"],
      ["2001:0DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["fe80::1%eth0", "fe80::1"],
      ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
      ["::", "::"],
    ] as const) {
      expect(formatIp(ipBytes(input)!)).toBe(text);
    }
  });

  it("reads no X-Forwarded-For from a peer that is not a trusted proxy", () => {
    expect(clientAddress("192.0.2.7", "198.51.100.1", trusted)).toBe("192.0.2.7");
    expect(clientAddress("127.0.0.2", "198.51.100.1", trusted)).toBe("127.0.0.2"); // only 127.0.0.1 was named
    expect(clientAddress("127.0.0.1", "198.51.100.1", noTrustedProxies)).toBe("127.0.0.1");
  });

  it("takes the rightmost entry that is not itself a trusted proxy", () => {
    expect(clientAddress("127.0.0.1", "198.51.100.1", trusted)).toBe("198.51.100.1");
    // what the client wrote itself stays on the left of what the proxies appended
    expect(clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.1", trusted)).toBe("198.51.100.1");
    expect(clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", trusted)).toBe("198.51.100.1");
    expect(clientAddress("::ffff:127.0.0.1", "::ffff:198.51.100.1", trusted)).toBe("198.51.100.1");
    expect(clientAddress("::1", "2001:db8::7, fd00::2", trusted)).toBe("2001:db8::7");
  });

  it("stops at a malformed entry or a long chain: the last trusted hop is the best it knows", () => {
    expect(clientAddress("127.0.0.1", "198.51.100.1, unknown", trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "198.51.100.1, 10.0.0.9, 1.2.3.4:5678", trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "garbage, 10.0.0.9", trusted)).toBe("10.0.0.9");
    expect(clientAddress("127.0.0.1", "", trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", `${"1".repeat(70_000)}`, trusted)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", `198.51.100.1, ${Array(40).fill("10.0.0.1").join(", ")}`, trusted)).toBe(
      "10.0.0.1",
    );
    // every entry a trusted proxy: the leftmost one looked at
    expect(clientAddress("127.0.0.1", "10.0.0.5, 10.0.0.6", trusted)).toBe("10.0.0.5");
  });
});
