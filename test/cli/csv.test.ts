import { describe, expect, it } from "bun:test";
import { parseCsv } from "../../src/cli/import-file.ts";

describe("parseCsv (RFC 4180)", () => {
  it("reads a header and rows", () => {
    expect(parseCsv("username,type,password\npress-1,mqtt,pw-long-1\npress-2,opcua,pw-long-2\n")).toEqual([
      { username: "press-1", type: "mqtt", password: "pw-long-1" },
      { username: "press-2", type: "opcua", password: "pw-long-2" },
    ]);
  });

  it("keeps quoted commas, doubled quotes and line breaks; accepts CRLF", () => {
    expect(
      parseCsv('type,username,description\r\nmqtt,"a","Hall 3, ""north"" door"\r\nmqtt,b,"two\nlines"\r\n'),
    ).toEqual([
      { type: "mqtt", username: "a", description: 'Hall 3, "north" door' },
      { type: "mqtt", username: "b", description: "two\nlines" },
    ]);
  });

  it("has no rows for a header alone", () => {
    expect(parseCsv("type,username\n")).toEqual([]);
  });
});
