import { describe, expect, it } from "bun:test";
import { formatJson, formatLine, shownName } from "../../src/lib/logger.ts";

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

describe("a name from outside inside a status message (shownName)", () => {
  it("is cut between code points and marked, and what would reorder or act on the text around it is escaped (found from outside: a topic cut at 128 UTF-16 units left a lone surrogate in the API's JSON; a U+202E in a topic reversed the rest of an uplink's error on the page)", () => {
    const emoji = `evil/${"A".repeat(122)}\u{1F600}\u{1F600}\u{1F600}`;
    const cut = shownName(emoji);
    expect(cut).toBe(`evil/${"A".repeat(122)}\u{1F600}…`);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/); // no lone high surrogate
    expect(shownName("a\u202eb\u001b[31mc\u009bd\n")).toBe("a\\u202eb\\u001b[31mc\\u009bd\\u000a");
    expect(shownName("plant/line-3/temp")).toBe("plant/line-3/temp");
    // invisible ones a terminal or a page would hide (the soft hyphen, tag characters that can carry hidden
    // text, interlinear annotation, musical formatting, a noncharacter), and a backslash: a topic that holds
    // the text \u202e must not read as an escape made here (found from outside)
    expect(shownName("a\u00adb\u{E0041}c\ufff9d\u{1D173}e\ufffef")).toBe(
      "a\\u00adb\\udb40\\udc41c\\ufff9d\\ud834\\udd73e\\ufffef",
    );
    expect(shownName("x\\u202ey")).toBe("x\\u005cu202ey");
    expect(formatLine("info", "x", { t: "\u{E0041}\u00ad" })).toContain("\\udb40\\udc41\\u00ad");
    expect(shownName("x".repeat(128))).toBe("x".repeat(128));
    expect(shownName("x".repeat(129))).toBe(`${"x".repeat(128)}…`);
  });
});
