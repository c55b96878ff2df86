// Workloads for the simulator: arrival times (Poisson, gamma with a coefficient of variation, or a CSV
// trace scaled to the offered rate), lognormal prompt and output lengths cut to a range, and an SLO
// class per request drawn from the scenario's mix. Each quantity has its own random stream, so the
// n-th request's lengths, class and pick seed are the same at every rate and for every policy.

import { readFileSync } from "node:fs";
import { parse } from "csv-parse/sync";
import { ConfigError } from "../errors.js";
import { Rng } from "./random.js";
import type { Scenario, SloClass } from "./scenario.js";

export interface SimRequest {
  id: string;
  /** Index in arrival order. */
  index: number;
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  sloLevel: string;
  sloTtftMs: number;
  sloTpotMs: number;
  /** Seed of the request's pick (the kernel's and the baselines' uniforms). */
  seed: number;
}

export interface LengthSpec {
  median: number;
  sigma: number;
  min: number;
  max: number;
}

/** One lognormal draw rounded to whole tokens and clamped to [min, max]. */
export function drawLength(rng: Rng, spec: LengthSpec): number {
  const x = Math.round(rng.lognormal(spec.median, spec.sigma));
  return Math.min(spec.max, Math.max(spec.min, x));
}

/** Picks a class by its share (shares add up to 1). */
export function drawClass(rng: Rng, mix: readonly SloClass[]): SloClass {
  let u = rng.next();
  for (const c of mix) {
    if (u < c.share) return c;
    u -= c.share;
  }
  return mix[mix.length - 1];
}

/** Inter-arrival gaps: exponential (Poisson), or gamma with shape 1/cv² and the same mean. */
export function arrivalGaps(process: { process: "poisson" } | { process: "gamma"; cv: number }, rateRps: number, rng: Rng): () => number {
  const meanMs = 1000 / rateRps;
  if (process.process === "poisson") return () => rng.exponential(meanMs);
  const shape = 1 / (process.cv * process.cv);
  const scale = meanMs / shape;
  return () => rng.gamma(shape, scale);
}

export interface TraceRow {
  arrivalMs: number;
  inputTokens: number;
  outputTokens: number;
  sloLevel?: string;
}

/**
 * A CSV trace with a header: arrivalMs, inputTokens, outputTokens and optionally sloLevel (columns in
 * any order; extra columns are ignored). Rows must be in arrival order.
 */
export function parseTrace(text: string, source = "trace"): TraceRow[] {
  let records: Record<string, string>[];
  try {
    records = parse(text, { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (err) {
    throw new ConfigError([`${source}: not a CSV trace: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const rows: TraceRow[] = [];
  records.forEach((r, i) => {
    const line = i + 2;
    const arrivalMs = Number(r.arrivalMs);
    const inputTokens = Number(r.inputTokens);
    const outputTokens = Number(r.outputTokens);
    if (!(Number.isFinite(arrivalMs) && arrivalMs >= 0)) problems.push(`${source} line ${line}: arrivalMs must be a number >= 0, got ${JSON.stringify(r.arrivalMs)}`);
    else if (rows.length > 0 && arrivalMs < rows[rows.length - 1].arrivalMs) problems.push(`${source} line ${line}: arrivals must not go back in time`);
    if (!(Number.isInteger(inputTokens) && inputTokens >= 1)) problems.push(`${source} line ${line}: inputTokens must be an integer >= 1, got ${JSON.stringify(r.inputTokens)}`);
    if (!(Number.isInteger(outputTokens) && outputTokens >= 1)) problems.push(`${source} line ${line}: outputTokens must be an integer >= 1, got ${JSON.stringify(r.outputTokens)}`);
    const level = r.sloLevel === undefined || r.sloLevel === "" ? undefined : r.sloLevel.toLowerCase();
    rows.push({ arrivalMs, inputTokens, outputTokens, sloLevel: level });
  });
  if (rows.length < 2) problems.push(`${source}: a trace needs at least two rows`);
  // Replays scale the trace's time span to a rate; a span of 0 has no rate to scale.
  else if (problems.length === 0 && rows[rows.length - 1].arrivalMs === rows[0].arrivalMs) {
    problems.push(`${source}: every row arrives at ${rows[0].arrivalMs} ms; a trace needs arrivals spread over time to be replayed at a rate`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return rows;
}

export function readTrace(path: string): TraceRow[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([`${path}: cannot read the trace (${(err as Error).message})`], "CONFIG_UNREADABLE");
  }
  return parseTrace(text, path);
}

/** Mean arrival rate of a trace, requests per second; its rows must span some time (parseTrace checks). */
export function traceRateRps(rows: readonly TraceRow[]): number {
  const span = rows.length < 2 ? 0 : rows[rows.length - 1].arrivalMs - rows[0].arrivalMs;
  if (!(span > 0)) throw new RangeError(`a trace of ${rows.length} rows spanning ${span} ms has no arrival rate`);
  return ((rows.length - 1) * 1000) / span;
}

/**
 * The requests of one run at `rateRps`: generated arrivals over the scenario's duration, or the trace
 * with its times taken from its first row and scaled so its mean rate is `rateRps` (rows without a
 * level draw one from the mix; arrivals past durationMs are dropped).
 */
export function generateWorkload(scenario: Scenario, rateRps: number, trace?: readonly TraceRow[]): SimRequest[] {
  const w = scenario.workload;
  const seed = scenario.seed;
  const sizes = { isl: Rng.stream(seed, "isl"), osl: Rng.stream(seed, "osl") };
  const classes = Rng.stream(seed, "slo-class");
  const seeds = Rng.stream(seed, "pick-seed");
  const byLevel = new Map(w.sloMix.map((c) => [c.level, c]));
  const out: SimRequest[] = [];
  const push = (arrivalMs: number, isl: number, osl: number, level: string | undefined) => {
    const drawn = drawClass(classes, w.sloMix);
    const c = level === undefined ? drawn : byLevel.get(level);
    if (c === undefined) throw new ConfigError([`trace: sloLevel ${level} is not in the scenario's sloMix (${[...byLevel.keys()].join(", ")})`]);
    const index = out.length;
    out.push({
      id: `r${index}`,
      index,
      arrivalMs,
      inputTokens: isl,
      outputTokens: osl,
      sloLevel: c.level,
      sloTtftMs: c.ttftMs,
      sloTpotMs: c.tpotMs,
      seed: seeds.uint32(),
    });
  };
  const arrivals = w.arrivals;
  if (arrivals.process === "trace") {
    const rows = trace ?? readTrace(w.traceFile ?? arrivals.file);
    const scale = traceRateRps(rows) / rateRps;
    const t0 = rows[0].arrivalMs;
    for (const row of rows) {
      const t = (row.arrivalMs - t0) * scale;
      if (t >= scenario.durationMs) break;
      push(t, row.inputTokens, row.outputTokens, row.sloLevel);
    }
    return out;
  }
  const gap = arrivalGaps(arrivals, rateRps, Rng.stream(seed, "arrivals"));
  for (let t = gap(); t < scenario.durationMs; t += gap()) {
    push(t, drawLength(sizes.isl, w.inputTokens), drawLength(sizes.osl, w.outputTokens), undefined);
  }
  return out;
}
