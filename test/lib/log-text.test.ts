import { describe, expect, it } from "bun:test";
import { formatJson, formatLine } from "../../src/lib/logger.ts";

describe("log lines and what strangers chose", () => {
  it("C1, bidirectional overrides, separators and invisible characters in a field are escaped, text and JSON (found from outside: a client id's U+009B and U+202E reached the journal raw)", () => {
    const clientId = "a\u009b31m\u202eb\u2028c\u200bd\u001be\u007f";
    const text = formatLine("info", "login refused", { clientId });
    const json = formatJson("info", "login refused", { clientId });
    for (const line of [text, json]) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e]/);
    expect(text).toContain("\\u009b31m\\u202eb\\u2028c\\u200bd\\u001be\\u007f");
    expect((JSON.parse(json) as { clientId: string }).clientId).toBe(clientId); // the same value
  });
});
