// bench:planner-eval — the planner evaluation of SPEC.md §8 (src/sim/planner-eval.ts): a daily-shaped
// load through the three default pools under static-peak, static-mean and planner allocations. One JSON
// line per (pool, allocation) and one per allocation for all pools on stdout; writes
// bench/results/planner-eval.md and .jsonl (or to --out DIR). --quick: one 12-minute day, results to a temporary
// directory unless --out is given.

import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { shippedFile } from "../src/paths.js";
import { ArimaSearchThread } from "../src/planner/arima-search.js";
import type { Layout } from "../src/planner/types.js";
import { ALLOCATIONS, evaluateAllocation, PLANNER_EVAL_DEFAULTS, PLANNER_EVAL_QUICK, staticLayouts, type PlannerEvalResult } from "../src/sim/planner-eval.js";
import { emit, note, round } from "./measure.js";
import { benchArgs } from "./args.js";

const { values: args } = benchArgs("bench:planner-eval", { quick: { type: "boolean" }, out: { type: "string", value: "DIR" } });
const quick = args.quick === true;
const outDir = args.out !== undefined ? args.out : quick ? mkdtempSync(join(tmpdir(), "headroom-planner-eval-")) : shippedFile("bench", "results");
const options = quick ? PLANNER_EVAL_QUICK : PLANNER_EVAL_DEFAULTS;
const thread = new ArimaSearchThread();
const results: PlannerEvalResult[] = [];
const lines: string[] = [];
const record = (line: Record<string, unknown>) => {
  emit(line);
  lines.push(JSON.stringify(line));
};

try {
  for (const allocation of ALLOCATIONS) {
    const started = performance.now();
    const r = await evaluateAllocation(allocation, options, thread.search);
    note(`${allocation}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const p of r.pools) {
      record({
        bench: "planner-eval",
        pool: p.pool,
        policy: allocation,
        attainment: round(p.attainment, 4),
        gpuHours: round(p.gpuHours, 3),
        meanGpus: round(p.meanGpus, 2),
        peakGpus: p.peakGpus,
        requests: p.requests,
        unfinished: p.unfinished,
        ttftP99Ms: round(p.ttftP99Ms, 1),
        tpotP99Ms: round(p.tpotP99Ms, 1),
        workersStarted: p.started,
        workersReleased: p.released,
      });
    }
    record({ bench: "planner-eval", pool: "all", policy: allocation, attainment: round(r.total.attainment, 4), gpuHours: round(r.total.gpuHours, 3), requests: r.total.requests });
    results.push(r);
  }
} finally {
  thread.close();
}

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "planner-eval.md"), report(results, quick ? "npm run bench:planner-eval -- --quick" : "npm run bench:planner-eval"));
writeFileSync(join(outDir, "planner-eval.jsonl"), `${lines.join("\n")}\n`);
note(`wrote ${join(outDir, "planner-eval.md")}`);

function layoutText(l: Layout): string {
  return [l.prefill > 0 ? `${l.prefill}P` : "", l.decode > 0 ? `${l.decode}D` : "", l.both > 0 ? `${l.both}B` : ""].filter(Boolean).join(" + ");
}

function report(rs: PlannerEvalResult[], command: string): string {
  const o = rs[0].options;
  const minutes = (ms: number) => `${round(ms / 60_000, 1)} min`;
  const pct = (x: number) => (100 * x).toFixed(1);
  const lines = [
    "# Planner evaluation",
    "",
    `Produced by \`${command}\` (src/sim/planner-eval.ts). The three default pools, each a simulated cluster on the shipped profile; ` +
      `per pool a daily-shaped load (a raised cosine from ${pct(o.troughFraction)} % to ${pct(o.peakFraction)} % of what the pool's largest layout serves, ` +
      `period ${minutes(o.periodMs)}, the pools' peaks a third of a period apart) for ${minutes(o.durationMs)}; requests in the first ${minutes(o.warmupMs)} are not scored. ` +
      `A new worker serves ${minutes(o.startupDelayMs)} after it is asked for; a removed one finishes its work first. GPUs count while a worker starts, serves or drains. ` +
      "Placement inside a pool is the least-loaded active worker of each role for every allocation.",
    "",
    "| pool | mean / peak req/s | static-mean layout | static-peak layout |",
    "| --- | ---: | --- | --- |",
    ...staticLayouts(o).map((s) => `| ${s.pool} | ${round(s.meanRps, 1)} / ${round(s.peakRps, 1)} | ${layoutText(s.staticMean)} | ${layoutText(s.staticPeak)} |`),
    "",
    "| pool | allocation | attainment % | GPU-hours | mean GPUs | peak GPUs | TTFT p99 ms | TPOT p99 ms | workers started / released |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  const pools = rs[0].pools.map((p) => p.pool);
  for (const pool of pools) {
    for (const r of rs) {
      const p = r.pools.find((x) => x.pool === pool)!;
      lines.push(
        `| ${pool} | ${p.allocation} | ${pct(p.attainment)} | ${round(p.gpuHours, 2)} | ${round(p.meanGpus, 2)} | ${p.peakGpus} | ${round(p.ttftP99Ms, 0)} | ${round(p.tpotP99Ms, 1)} | ${p.started} / ${p.released} |`,
      );
    }
  }
  for (const r of rs) lines.push(`| all | ${r.total.allocation} | ${pct(r.total.attainment)} | ${round(r.total.gpuHours, 2)} | | | | | |`);
  return `${lines.join("\n")}\n`;
}
