import { describe, expect, it } from "bun:test";
import { filterCovers, topicMatches } from "../../src/core/topics.ts";

describe("topicMatches", () => {
  const cases: [string, string, boolean][] = [
    ["#", "a/b", true],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/+/c", "a/b/c", true],
    ["+/+", "/a", true],
    ["#", "$SYS/broker", false],
    ["+/broker", "$SYS/broker", false],
    ["$SYS/#", "$SYS/broker", true],
    ["a/b", "a/b", true],
    ["a/b", "a/bc", false],
  ];
  for (const [filter, topic, expected] of cases)
    it(`${filter} ~ ${topic} = ${expected}`, () => expect(topicMatches(filter, topic)).toBe(expected));
});

describe("filterCovers", () => {
  const cases: [string, string, boolean][] = [
    ["#", "a/#", true],
    ["#", "$SYS/#", false],
    ["a/#", "a/b/+", true],
    ["a/#", "b/#", false],
    ["a/+", "a/b", true],
    ["a/+", "a/+", true],
    ["a/+", "a/#", false],
    ["a/b", "a/+", false],
    ["a/+/c", "a/x/c", true],
    ["a/+/c", "a/x/#", false],
  ];
  for (const [allowed, requested, expected] of cases)
    it(`${allowed} covers ${requested} = ${expected}`, () => expect(filterCovers(allowed, requested)).toBe(expected));
});
