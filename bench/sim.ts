// bench:sim — the cluster simulator's sweep (SPEC.md §8): every scenario in bench/scenarios/, every
// policy it lists, every rate of its grid. JSON lines on stdout (one per scenario, policy and rate, then
// one goodput line per scenario and policy), a progress bar on stderr, and a Markdown table and one SVG
// plot per scenario in the output directory.
//
//   npm run bench:sim                      full sweep, results in bench/results/
//   npm run bench:sim -- --quick           3 rates, 20 s of arrivals: a smoke test (results in a temp dir)
//   npm run bench:sim -- --scenarios default,burst --policies headroom,queue-kv [--out /tmp/x]
//
// Only the full sweep writes bench/results/ by default (the README quotes it): a quick or narrowed run
// writes to a temp dir unless --out says where, and its report names the options it ran with.

import { mkdirSync, mkdtempSync, readdirSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { shippedFile } from "../src/paths.js";
import { loadProfiles, nominalCapacity, rateGrid } from "../src/sim/capacity.js";
import { goodputOf, markdownReport, svgPlot, type ScenarioSweep } from "../src/sim/report.js";
import { POLICY_NAMES, simulate, summarize, type RunSummary } from "../src/sim/run.js";
import { loadScenario, type Scenario } from "../src/sim/scenario.js";
import { readTrace } from "../src/sim/workload.js";
import { parseBenchArgs, UsageError, usageLine, type BenchOption } from "./args.js";
import { emit, note, round } from "./measure.js";

/** The SPEC's scenarios first, in its order; any other file after them, by name. */
const ORDER = ["default", "mismatch", "two-racks", "burst"];
const QUICK = { fractions: [0.4, 0.8, 1.2], durationMs: 20_000, warmupMs: 5_000, drainMs: 20_000 };

export interface SweepArgs {
  quick: boolean;
  /** Scenario names in report order. */
  scenarios: string[];
  /** undefined: every policy each scenario lists. */
  policies?: string[];
  outDir: string;
  /** The command as the report states it: only the options that shape the results. */
  command: string;
}

/** bench:sim's options (`headroom sim` passes its own on): anything else is a usage error. */
export const SWEEP_OPTIONS = {
  quick: { type: "boolean" },
  scenarios: { type: "string", value: "LIST" },
  policies: { type: "string", value: "LIST" },
  out: { type: "string", value: "DIR" },
} as const satisfies Record<string, BenchOption>;

/**
 * Reads bench:sim's options (an unknown one, or one without its value, is a UsageError naming the
 * accepted ones). `known` are the scenario files' names; an unknown scenario or policy is a
 * RangeError listing the known ones. Without --out, the full sweep writes `resultsDir` and any quick or
 * narrowed run a fresh temp dir (`tempDir()`).
 */
export function sweepArgs(argv: readonly string[], known: readonly string[], resultsDir: string, tempDir: () => string): SweepArgs {
  const { values } = parseBenchArgs(argv, SWEEP_OPTIONS);
  const list = (value: string | undefined) => value?.split(",").filter((x) => x !== "");
  const quick = values.quick === true;
  const wanted = list(values.scenarios);
  for (const name of wanted ?? []) if (!known.includes(name)) throw new RangeError(`unknown scenario ${name} (known: ${known.join(", ")})`);
  const policies = list(values.policies);
  for (const p of policies ?? []) if (!POLICY_NAMES.includes(p)) throw new RangeError(`unknown policy ${p} (known: ${POLICY_NAMES.join(", ")})`);
  const scenarios = known.filter((name) => wanted === undefined || wanted.includes(name)).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  if (scenarios.length === 0) throw new RangeError(`no scenario to run (known: ${known.join(", ")})`);
  const narrowed = wanted !== undefined || policies !== undefined;
  const outDir = values.out ?? (quick || narrowed ? tempDir() : resultsDir);
  const flags = [...(quick ? ["--quick"] : []), ...(wanted !== undefined ? ["--scenarios", wanted.join(",")] : []), ...(policies !== undefined ? ["--policies", policies.join(",")] : [])];
  const command = flags.length === 0 ? "npm run bench:sim" : `npm run bench:sim -- ${flags.join(" ")}`;
  return { quick, scenarios, policies, outDir, command };
}

function rank(name: string): number {
  const i = ORDER.indexOf(name);
  return i < 0 ? ORDER.length : i;
}

interface Plan {
  scenario: Scenario;
  profiles: ReturnType<typeof loadProfiles>;
  trace?: ReturnType<typeof readTrace>;
  capacity: ReturnType<typeof nominalCapacity>;
  policies: string[];
  grid: { fraction: number; rateRps: number }[];
}

function summaryLine(s: RunSummary): Record<string, unknown> {
  const r = (x: number, d = 1) => (Number.isFinite(x) ? round(x, d) : null);
  return {
    requests: s.requests,
    completed: s.completed,
    unfinished: s.unfinished,
    unrouted: s.unrouted,
    failed: s.failed,
    attainment: r(s.attainment, 4),
    ttftAttainment: r(s.ttftAttainment, 4),
    tpotAttainment: r(s.tpotAttainment, 4),
    byLevel: Object.fromEntries(Object.entries(s.byLevel).map(([k, v]) => [k, r(v, 4)])),
    ttftP50Ms: r(s.ttftP50Ms),
    ttftP90Ms: r(s.ttftP90Ms),
    ttftP99Ms: r(s.ttftP99Ms),
    tpotP50Ms: r(s.tpotP50Ms, 2),
    tpotP90Ms: r(s.tpotP90Ms, 2),
    tpotP99Ms: r(s.tpotP99Ms, 2),
    ttftErrorP50Ms: r(s.ttftErrorP50Ms),
    prefillErrorP50Ms: r(s.prefillErrorP50Ms),
    tpotErrorP50Ms: r(s.tpotErrorP50Ms, 2),
  };
}

function main(): void {
  const scenarioDir = shippedFile("bench", "scenarios");
  const known = readdirSync(scenarioDir)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => basename(f, ".yaml"));
  let args: SweepArgs;
  try {
    args = sweepArgs(process.argv.slice(2), known, shippedFile("bench", "results"), () => mkdtempSync(join(tmpdir(), "headroom-sim-")));
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    process.stderr.write(`bench:sim: ${err.message}\n${err instanceof UsageError ? usageLine("bench:sim", SWEEP_OPTIONS) : ""}`);
    process.exitCode = 2;
    return;
  }
  const { quick, scenarios, policies: policyFilter, outDir, command } = args;

  function reduced(s: Scenario): Scenario {
    if (!quick) return s;
    return { ...s, durationMs: QUICK.durationMs, warmupMs: QUICK.warmupMs, drainMs: QUICK.drainMs };
  }

  const plans: Plan[] = scenarios.map((name) => {
    const scenario = reduced(loadScenario(join(scenarioDir, `${name}.yaml`)));
    const profiles = loadProfiles(scenario);
    const trace = scenario.workload.traceFile !== undefined ? readTrace(scenario.workload.traceFile) : undefined;
    const capacity = nominalCapacity(scenario, profiles, trace);
    const full = rateGrid(scenario, capacity);
    const grid = quick ? full.filter((g) => QUICK.fractions.includes(g.fraction)) : full;
    const policies = scenario.policies.filter((p) => policyFilter === undefined || policyFilter.includes(p));
    return { scenario, profiles, trace, capacity, policies, grid };
  }).filter((plan) => plan.policies.length > 0);
  if (plans.length === 0) throw new RangeError(`no scenario among ${scenarios.join(", ")} lists any of ${policyFilter?.join(", ")}`);

  const total = plans.reduce((n, p) => n + p.policies.length * p.grid.length, 0);
  let done = 0;
  const started = performance.now();
  const tty = process.stderr.isTTY === true;

  function progress(label: string): void {
    if (!tty) return;
    const width = 30;
    const filled = Math.round((done / total) * width);
    const elapsed = (performance.now() - started) / 1000;
    process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${elapsed.toFixed(0)} s ${label}`.padEnd(100));
  }

  const sweeps: ScenarioSweep[] = [];
  const lines: string[] = [];
  const record = (line: Record<string, unknown>) => {
    emit(line);
    lines.push(JSON.stringify(line));
  };

  for (const plan of plans) {
    const { scenario, profiles, trace, capacity } = plan;
    note(`${tty ? "\n" : ""}${scenario.name}: nominal capacity ${capacity.nominalRps.toFixed(1)} req/s (prefill ${capacity.prefillRps.toFixed(1)}, decode ${capacity.decodeRps.toFixed(1)})`);
    const sweep: ScenarioSweep = { name: scenario.name, description: scenario.description, capacity, policies: plan.policies, points: [] };
    for (const policy of plan.policies) {
      const t0 = performance.now();
      for (const { fraction, rateRps } of plan.grid) {
        progress(`${scenario.name} ${policy} ${rateRps} req/s`);
        const out = simulate({ scenario, policy, rateRps, profiles, capacity, trace });
        const summary = summarize(out.records, scenario.warmupMs);
        sweep.points.push({ policy, fraction, rateRps, summary });
        record({ bench: "sim", scenario: scenario.name, policy, loadFraction: fraction, rateRps, ...summaryLine(summary) });
        done++;
      }
      const g = goodputOf(sweep, policy);
      record({
        bench: "sim",
        scenario: scenario.name,
        policy,
        goodputRps: g.goodputRps,
        goodputFraction: round(g.goodputFraction, 3),
        crossingRps: round(g.crossingRps, 2),
        nominalRps: round(capacity.nominalRps, 2),
      });
      if (!tty) note(`${scenario.name} ${policy}: goodput ${g.goodputRps} req/s (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    sweeps.push(sweep);
  }
  progress("done");
  if (tty) process.stderr.write("\n");

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "sim.md"), markdownReport(sweeps, command));
  for (const sweep of sweeps) writeFileSync(join(outDir, `sim-${sweep.name}.svg`), svgPlot(sweep));
  writeFileSync(join(outDir, "sim.jsonl"), `${lines.join("\n")}\n`);
  note(`${total} runs in ${((performance.now() - started) / 1000).toFixed(1)} s; report in ${outDir}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) main();
