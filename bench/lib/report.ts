/**
 * One row format for every benchmark: each prints its own Markdown table, and when `bun run bench`
 * (bench/all.ts) runs it with BENCH_ROWS set, also appends its rows there as JSON lines so the whole
 * run becomes one table.
 */
import { appendFileSync } from "node:fs";

export interface Row {
  bench: string;
  measure: string;
  /** what the ratio is against, e.g. "Mosquitto 2" or "bare aedes" */
  baselineName: string;
  baseline: string;
  gatehouse: string;
  /** > 1 means Gatehouse is better (faster, leaner) than the baseline */
  ratio: number;
  goal?: string;
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }).replace(/,/g, " ");

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function markdown(rows: Row[], withBench = false): string {
  const head = withBench
    ? "| bench | measure | baseline | Gatehouse | ratio | goal |"
    : "| measure | baseline | Gatehouse | ratio | goal |";
  const lines = [head, head.replace(/[^|]+/g, " --- ")];
  for (const r of rows) {
    const cells = [r.measure, `${r.baseline} (${r.baselineName})`, r.gatehouse, `${r.ratio.toFixed(2)}x`, r.goal ?? ""];
    lines.push(`| ${(withBench ? [r.bench, ...cells] : cells).join(" | ")} |`);
  }
  return lines.join("\n");
}

export function report(rows: Row[]) {
  console.log(markdown(rows));
  const file = process.env.BENCH_ROWS;
  if (file) appendFileSync(file, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
}
