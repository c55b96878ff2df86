// A simulation scenario (SPEC.md §8), read from YAML in bench/scenarios/: the simulated cluster (pods,
// roles, racks, per-pod slowdowns against the profile, links), the workload (arrivals, prompt and
// output lengths, SLO classes), the policies compared, and the rate grid as fractions of the
// scenario's nominal capacity.

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { BUILTIN_PROFILE, DEFAULTS } from "../config/schema.js";
import { ConfigError } from "../errors.js";

const positive = () => z.number().positive();
const nonNegative = () => z.number().nonnegative();
const fraction = () => z.number().gt(0).lte(1);

/** A lognormal length distribution, rounded to whole tokens and cut (clamped) to [min, max]. */
const LengthSchema = z.strictObject({
  median: positive(),
  sigma: nonNegative(),
  min: z.number().int().min(1).default(1),
  max: z.number().int().min(1),
});

const ArrivalsSchema = z.discriminatedUnion("process", [
  z.strictObject({ process: z.literal("poisson") }),
  /** Gamma inter-arrival times with this coefficient of variation (1 is Poisson; larger is burstier). */
  z.strictObject({ process: z.literal("gamma"), cv: positive() }),
  /** A CSV trace (arrivalMs,inputTokens,outputTokens[,sloLevel]) replayed with its times scaled to the rate. */
  z.strictObject({ process: z.literal("trace"), file: z.string().min(1) }),
]);

const SloClassSchema = z.strictObject({
  level: z.string().min(1),
  share: nonNegative(),
  /** Absent: the default pool of the same level (high 300/30, medium 600/50, low 2000/100 ms). */
  ttftMs: positive().optional(),
  tpotMs: positive().optional(),
});

const PodGroupSchema = z.strictObject({
  /** Pods are named name0, name1, ... */
  name: z.string().regex(/^[a-z][a-z0-9-]*$/),
  count: z.number().int().min(1),
  role: z.enum(["prefill", "decode"]),
  rack: z.string().min(1).default("r0"),
  tp: z.number().int().min(1).default(1),
  /** Absent: cluster.profile. */
  profile: z.string().min(1).optional(),
  /** Absent: what the profile's hardware leaves at cluster.gpuMemoryUtilization. */
  kvCapacityTokens: z.number().int().min(1).optional(),
  /** The pod's compute takes this many times what its profile says (1.6 = 60 % slower). */
  prefillTimeFactor: positive().default(1),
  decodeTimeFactor: positive().default(1),
});

const ScenarioSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]*$/),
  description: z.string().default(""),
  seed: z.number().int().min(0).max(0xffffffff),
  /** Arrivals are generated for durationMs; requests arriving before warmupMs are served but not scored. */
  durationMs: positive(),
  warmupMs: nonNegative(),
  /** After the last arrival the run goes on at most this long; requests still unfinished count as misses. */
  drainMs: positive(),
  workload: z.strictObject({
    arrivals: ArrivalsSchema,
    inputTokens: LengthSchema,
    outputTokens: LengthSchema,
    sloMix: z.array(SloClassSchema).min(1),
  }),
  cluster: z.strictObject({
    /** The pods' latency profile unless they name another: the shipped one, or a name from `profiles`. */
    profile: z.string().default(BUILTIN_PROFILE),
    /** Other profiles: name -> CSV path (relative to the scenario file), read as headroom reads them. */
    profiles: z.record(z.string(), z.string().min(1)).default({}),
    gpuMemoryUtilization: fraction().default(0.9),
    /** A prefill pod batches queued prompts FIFO while their tokens fit this budget (one prompt always goes). */
    prefillTokenBudget: z.number().int().min(1),
    /** Fixed cost of one KV transfer, on top of bytes / bandwidth. */
    transferOverheadMs: nonNegative(),
    bandwidthGBps: z.strictObject({ node: positive(), rack: positive(), cross: positive() }),
    /** TP > 1 runs tp x tpEfficiency times faster. */
    tpEfficiency: fraction().default(DEFAULTS.predictors.tpEfficiency),
    scrape: z.strictObject({ intervalMs: positive(), delayMs: nonNegative() }),
    pods: z.array(PodGroupSchema).min(1),
  }),
  policies: z.array(z.string().min(1)).min(1),
  /** Offered rates as fractions of nominal capacity: from, from + step, ... up to `to` inclusive. */
  rates: z.strictObject({ from: positive(), to: positive(), step: positive() }),
});

export type ScenarioInput = z.input<typeof ScenarioSchema>;
type Parsed = z.output<typeof ScenarioSchema>;

export interface SloClass {
  level: string;
  share: number;
  ttftMs: number;
  tpotMs: number;
}

export interface SimPodSpec {
  name: string;
  address: string;
  role: "prefill" | "decode";
  rack: string;
  /** Every simulated pod is its own node (GPU server); node names are qualified by rack. */
  node: string;
  tp: number;
  profile: string;
  kvCapacityTokens?: number;
  prefillTimeFactor: number;
  decodeTimeFactor: number;
}

export interface Scenario extends Omit<Parsed, "workload" | "cluster"> {
  workload: Omit<Parsed["workload"], "sloMix" | "arrivals"> & {
    arrivals: Parsed["workload"]["arrivals"];
    sloMix: SloClass[];
    /** Resolved trace path, for trace arrivals. */
    traceFile?: string;
  };
  cluster: Omit<Parsed["cluster"], "pods"> & { pods: SimPodSpec[] };
}

/** Reads a scenario file; problems are a ConfigError naming the file. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([`${path}: cannot read the scenario (${(err as Error).message})`], "CONFIG_UNREADABLE");
  }
  return parseScenario(text, path);
}

/** Parses and checks a scenario; relative trace paths resolve against `source`'s directory. */
export function parseScenario(text: string, source = "scenario"): Scenario {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`${source}: not YAML: ${(err as Error).message}`]);
  }
  return scenarioFrom(data, source);
}

export function scenarioFrom(data: unknown, source = "scenario"): Scenario {
  const result = ScenarioSchema.safeParse(data);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${source}: ${i.path.join(".") || "(top level)"}: ${i.message}`));
  }
  const s = result.data;
  const problems: string[] = [];
  if (s.warmupMs >= s.durationMs) problems.push(`${source}: warmupMs must be < durationMs`);
  if (s.rates.to < s.rates.from) problems.push(`${source}: rates.to must be >= rates.from`);
  if (s.workload.inputTokens.max < s.workload.inputTokens.min) problems.push(`${source}: workload.inputTokens.max must be >= min`);
  if (s.workload.outputTokens.max < s.workload.outputTokens.min) problems.push(`${source}: workload.outputTokens.max must be >= min`);
  const shares = s.workload.sloMix.reduce((sum, c) => sum + c.share, 0);
  if (!(shares > 0)) problems.push(`${source}: workload.sloMix shares must add up to more than 0`);
  const sloMix: SloClass[] = s.workload.sloMix.map((c, i) => {
    const pool = DEFAULTS.pools.find((p) => p.sloLevel === c.level.toLowerCase());
    const ttftMs = c.ttftMs ?? pool?.targets.ttftMs;
    const tpotMs = c.tpotMs ?? pool?.targets.tpotMs;
    if (ttftMs === undefined || tpotMs === undefined) {
      problems.push(`${source}: workload.sloMix[${i}]: level ${c.level} is not a default pool (high, medium, low); give ttftMs and tpotMs`);
    }
    return { level: c.level.toLowerCase(), share: c.share / shares, ttftMs: ttftMs ?? 1, tpotMs: tpotMs ?? 1 };
  });
  const pods: SimPodSpec[] = [];
  const names = new Set<string>();
  for (const group of s.cluster.pods) {
    for (let i = 0; i < group.count; i++) {
      const name = `${group.name}${i}`;
      if (names.has(name)) problems.push(`${source}: cluster.pods: pod name ${name} is used twice`);
      names.add(name);
      pods.push({
        name,
        address: `${name}.sim:8000`,
        role: group.role,
        rack: group.rack,
        node: `${group.rack}/${name}`,
        tp: group.tp,
        profile: group.profile ?? s.cluster.profile,
        kvCapacityTokens: group.kvCapacityTokens,
        prefillTimeFactor: group.prefillTimeFactor,
        decodeTimeFactor: group.decodeTimeFactor,
      });
    }
  }
  if (!pods.some((p) => p.role === "prefill")) problems.push(`${source}: cluster.pods: needs a prefill pod`);
  if (!pods.some((p) => p.role === "decode")) problems.push(`${source}: cluster.pods: needs a decode pod`);
  const profiles: Record<string, string> = {};
  for (const [name, path] of Object.entries(s.cluster.profiles)) profiles[name] = resolveFrom(source, path);
  for (const pod of pods) {
    if (pod.profile !== BUILTIN_PROFILE && !(pod.profile in profiles)) {
      problems.push(`${source}: pod ${pod.name} names profile ${pod.profile}, which is neither ${BUILTIN_PROFILE} nor in cluster.profiles`);
    }
  }
  let traceFile: string | undefined;
  const arrivals = s.workload.arrivals;
  if (arrivals.process === "trace") {
    traceFile = resolveFrom(source, arrivals.file);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...s,
    workload: { ...s.workload, sloMix, traceFile },
    cluster: { ...s.cluster, profiles, pods },
  };
}

/** A path in a scenario file, relative to that file (or as written when the scenario has no file). */
function resolveFrom(source: string, path: string): string {
  return isAbsolute(path) || source === "scenario" ? path : resolve(dirname(source), path);
}

/** The rate grid's fractions of nominal capacity, rounded to avoid 0.30000000000000004. */
export function rateFractions(s: Pick<Scenario, "rates">): number[] {
  const out: number[] = [];
  const { from, to, step } = s.rates;
  for (let k = 0; ; k++) {
    const f = Math.round((from + k * step) * 1e6) / 1e6;
    if (f > to + 1e-9) break;
    out.push(f);
  }
  return out;
}
