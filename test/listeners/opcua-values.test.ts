import { describe, expect, it } from "bun:test";
import { DataType } from "node-opcua-variant";
import { payloadToVariant, variantToPayload } from "../../src/listeners/opcua/address-space.ts";

describe("payloadToVariant", () => {
  for (const [text, dataType, value] of [
    ["21.5", DataType.Double, 21.5],
    ["-3", DataType.Double, -3],
    ["1e3", DataType.Double, 1000],
    [".5", DataType.Double, 0.5],
    ["true", DataType.Boolean, true],
    ["false", DataType.Boolean, false],
    ["True", DataType.String, "True"],
    ["press #7", DataType.String, "press #7"],
    ["0x10", DataType.String, "0x10"],
    ["", DataType.String, ""],
    ["1e999", DataType.String, "1e999"], // not finite: kept as text
  ] as const) {
    it(`${JSON.stringify(text)} -> ${DataType[dataType]}`, () => {
      const v = payloadToVariant(Buffer.from(text));
      expect(v.dataType).toBe(dataType);
      expect(v.value).toBe(value);
    });
  }

  it("round-trips through variantToPayload", () => {
    for (const text of ["21.5", "true", "hello"])
      expect(variantToPayload(payloadToVariant(Buffer.from(text))).toString()).toBe(text);
  });
});
