// The configuration file's schema (SPEC.md §7) and its defaults. Every option is validated here, with a
// message that says what is allowed; src/config/load.ts turns failures into ConfigError problem lines.

import { z } from "zod";
import { usableCpus } from "../cpus.js";
import type { OptimizerParams, TopologyParams } from "../kernel/types.js";
import { MAX_FALLBACKS } from "../kernel/types.js";
import { MAX_SLO_MS } from "../kernel/validate.js";
import { normalizeAddress } from "../pods/address.js";

/** The largest optimizer weight (see OptimizerSchema). */
const MAX_WEIGHT = 1_000_000;

/** The longest delay a Node timer waits: a longer one fires after 1 ms (a 35-day interval ran every millisecond). */
const MAX_TIMER_MS = 2_147_483_647;

/** The latency profile shipped with headroom; always known, even when `predictors.profiles` is empty. */
export const BUILTIN_PROFILE = "h100_llama3_8b_bf16";

/** `pods.reflectDelayMs` defaults to this many scrape intervals. */
export const REFLECT_DELAY_SCRAPES = 2;

type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

export function deepFreeze<const T>(value: T): DeepReadonly<T> {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value as DeepReadonly<T>;
}

const plannerDefaults = {
  high: {
    adjustmentIntervalMs: 30_000,
    scaleUpThreshold: 0.5,
    bufferRatio: 0.8,
    percentile: 95,
    violationsAllowed: 0.05,
    loadPredictor: "arima",
    proactive: true,
    burstProtection: true,
    costOptimization: false,
  },
  medium: {
    adjustmentIntervalMs: 30_000,
    scaleUpThreshold: 0.7,
    bufferRatio: 0.85,
    percentile: 90,
    violationsAllowed: 0.1,
    loadPredictor: "arima",
    proactive: true,
    burstProtection: false,
    costOptimization: false,
  },
  low: {
    adjustmentIntervalMs: 30_000,
    scaleUpThreshold: 0.9,
    bufferRatio: 0.95,
    percentile: 80,
    violationsAllowed: 0.2,
    loadPredictor: "constant",
    proactive: false,
    burstProtection: false,
    costOptimization: true,
  },
} as const;

/**
 * Every default in one place. `pools` is what an absent `pools` section means (SPEC.md §6, an 8-GPU
 * cluster); a configured pool whose sloLevel is high, medium or low takes its missing fields from the
 * row of the same level, any other level from the medium row (targets and sloPriority then required).
 */
export const DEFAULTS = deepFreeze({
  server: {
    host: "127.0.0.1",
    port: 8080,
    maxBodyBytes: 1024 * 1024,
    maxInflightPerConnection: 1024,
  },
  optimizer: {
    ttftWeight: 0.8,
    tpotWeight: 0.2,
    transferOverheadMs: 5.0,
    sloBufferFactor: 0.9,
    negativeHeadroomProb: 0.01,
    headroomStrategy: "most",
    localPrefill: "threshold",
    pdThreshold: 256,
    fallbacks: 2,
    shedSheddable: true,
  },
  topology: {
    kvBytesPerToken: 0,
    bandwidthGBps: { node: 450, rack: 50, cross: 12.5 },
  },
  predictors: {
    prefillTtft: "profile",
    decodeTtft: "profile",
    decodeTpot: "profile",
    profiles: {},
    defaultProfile: BUILTIN_PROFILE,
    tpEfficiency: 0.85,
    refreshMs: 100,
    remote: { timeoutMs: 50, gridPoints: 4, trainingBufferSize: 10_000, trainingFlushMs: 1000 },
    online: { quantile: 0.9, minPodSamples: 50 },
  },
  pods: {
    scrapeIntervalMs: 100,
    scrapeTimeoutMs: 80,
    staleAfterMs: 1000,
    inflightTtlFactor: 2,
    scrapeConcurrency: 32,
    /** Used when a `pods.kubernetes` section turns discovery on. */
    kubernetes: { namespace: "default", port: 8000, metricsPath: "/metrics", resyncMs: 300_000 },
  },
  pools: [
    {
      name: "high",
      sloLevel: "high",
      sloPriority: 1,
      description: "Premium service with strict latency requirements",
      targets: { ttftMs: 300, tpotMs: 30 },
      expected: { isl: 2000, osl: 150 },
      tp: 2,
      maxGpus: 4,
      gpuMemoryUtilization: 0.95,
      planner: plannerDefaults.high,
      pods: [],
    },
    {
      name: "medium",
      sloLevel: "medium",
      sloPriority: 2,
      description: "Standard service balancing latency and cost",
      targets: { ttftMs: 600, tpotMs: 50 },
      expected: { isl: 2000, osl: 150 },
      tp: 1,
      maxGpus: 3,
      gpuMemoryUtilization: 0.9,
      planner: plannerDefaults.medium,
      pods: [],
    },
    {
      name: "low",
      sloLevel: "low",
      sloPriority: 3,
      description: "Best-effort service optimised for cost",
      targets: { ttftMs: 2000, tpotMs: 100 },
      expected: { isl: 2000, osl: 150 },
      tp: 1,
      maxGpus: 1,
      gpuMemoryUtilization: 0.85,
      planner: plannerDefaults.low,
      pods: [],
    },
  ],
  cluster: { gpuBudget: 8, gpuHourPrice: 2.5 },
  planners: {
    actuator: "advisory",
    apply: { attempts: 4, initialBackoffMs: 1000, maxBackoffMs: 30_000 },
    webhook: { timeoutMs: 5000 },
    // No namespace: it must be configured (see the kubernetes section of PlannersSchema).
    kubernetes: { requestTimeoutMs: 10_000, conflictRetries: 3 },
  },
  workers: {
    // One thread stays free for the main thread (HTTP, scraping, planners); a container's CPU limit counts.
    threads: Math.max(1, usableCpus() - 1),
    inlineBelowPairs: 131_072,
    queuePerThread: 4,
    batchCapacity: 256,
    batchWindowUs: 0,
    nice: 10,
  },
});

// ---- field builders: one message per field, used for both wrong type and out of range ----

interface Bounds {
  int?: boolean;
  gt?: number;
  ge?: number;
  lt?: number;
  le?: number;
}

function describeBounds(b: Bounds): string {
  const parts: string[] = [];
  if (b.gt !== undefined) parts.push(`> ${b.gt}`);
  if (b.ge !== undefined) parts.push(`>= ${b.ge}`);
  if (b.lt !== undefined) parts.push(`< ${b.lt}`);
  if (b.le !== undefined) parts.push(`<= ${b.le}`);
  const kind = b.int ? "an integer" : "a number";
  return parts.length === 0 ? `must be ${kind}` : `must be ${kind} ${parts.join(" and ")}`;
}

/** Whole milliseconds that become a timer's delay: at most MAX_TIMER_MS, which Node would run after 1 ms. */
function timerMs(min = 1) {
  return num({ int: true, ge: min, le: MAX_TIMER_MS });
}

function num(b: Bounds) {
  const error = describeBounds(b);
  return z.number({ error }).refine(
    (v) =>
      (!b.int || Number.isInteger(v)) &&
      (b.gt === undefined || v > b.gt) &&
      (b.ge === undefined || v >= b.ge) &&
      (b.lt === undefined || v < b.lt) &&
      (b.le === undefined || v <= b.le),
    { error },
  );
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(", ")}` });
}

const bool = () => z.boolean({ error: "must be true or false" });
const text = () => z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" });

/** Names that appear in metric labels and URLs. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const name = () =>
  z.string({ error: "must be a name of letters, digits, '.', '_' or '-' (at most 63)" }).regex(NAME_RE, {
    error: "must be a name of letters, digits, '.', '_' or '-' (at most 63)",
  });

const ADDRESS_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/;
/** host:port, a DNS name being at most 253 characters: an address is in answers, headers and labels. */
export const MAX_ADDRESS_CHARS = 260;
const address = () =>
  z
    .string({ error: "must be host:port with a port in 1..65535" })
    .refine((s) => {
      const m = s.length <= MAX_ADDRESS_CHARS ? ADDRESS_RE.exec(s) : null;
      const port = m ? Number(m[1]) : 0;
      return port >= 1 && port <= 65535;
    }, { error: `must be host:port with a port in 1..65535, at most ${MAX_ADDRESS_CHARS} characters` });

/** An HTTP header name: an RFC 9110 token. */
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const httpUrl = () =>
  z
    .string({ error: "must be an http(s) URL" })
    .refine((s) => {
      if (!URL.canParse(s)) return false;
      const protocol = new URL(s).protocol;
      return protocol === "http:" || protocol === "https:";
    }, { error: "must be an http(s) URL", abort: true })
    // fetch refuses such a URL, so every scrape or call to it would fail.
    .refine((s) => {
      const url = new URL(s);
      return url.username === "" && url.password === "";
    }, { error: "must be an http(s) URL without a user or password (fetch refuses credentials in a URL)" });

function mapping<S extends z.core.$ZodLooseShape>(shape: S, what: string) {
  return z.strictObject(shape, { error: `must be a mapping of ${what}` });
}

/** A section or sub-mapping that may be absent or left empty in YAML (`optimizer:` parses as null). */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.prefault({} as z.input<T>));
}

// ---- sections ----

const D = DEFAULTS;

const ADMIN_TOKEN_RULE = "must be a string of at least 16 characters, without whitespace or control characters";

/**
 * `server.adminToken`, and the environment's token that replaces it (src/config/load.ts). The server
 * takes the token as one run of non-space characters after `Bearer`, so a token with a space, a tab or a
 * line break in it could never be sent: every admin call was refused.
 */
export const AdminTokenSchema = z
  .string({ error: ADMIN_TOKEN_RULE })
  .min(16, { error: ADMIN_TOKEN_RULE })
  .regex(/^[^\s\x00-\x1f\x7f]*$/, { error: ADMIN_TOKEN_RULE });

const ServerSchema = mapping(
  {
    host: text().default(D.server.host),
    port: num({ int: true, ge: 0, le: 65535 }).default(D.server.port),
    adminToken: AdminTokenSchema.optional(),
    maxBodyBytes: num({ int: true, ge: 1, le: 64 * 1024 * 1024 }).default(D.server.maxBodyBytes),
    maxInflightPerConnection: num({ int: true, ge: 1, le: 65_536 }).default(D.server.maxInflightPerConnection),
  },
  "host, port, adminToken, maxBodyBytes, maxInflightPerConnection",
);

const OptimizerSchema = mapping(
  {
    // Weights are relative; bounded so that a blended headroom (weight x up to 10^9 ms) keeps the kernel's
    // +1 in its draw weights (near 2^53 it is lost and no pair has a positive weight).
    ttftWeight: num({ ge: 0, le: MAX_WEIGHT }).default(D.optimizer.ttftWeight),
    tpotWeight: num({ ge: 0, le: MAX_WEIGHT }).default(D.optimizer.tpotWeight),
    transferOverheadMs: num({ ge: 0 }).default(D.optimizer.transferOverheadMs),
    sloBufferFactor: num({ gt: 0, le: 1 }).default(D.optimizer.sloBufferFactor),
    negativeHeadroomProb: num({ ge: 0, le: 1 }).default(D.optimizer.negativeHeadroomProb),
    headroomStrategy: oneOf(["most", "least", "best"]).default(D.optimizer.headroomStrategy),
    localPrefill: oneOf(["never", "threshold", "compete"]).default(D.optimizer.localPrefill),
    pdThreshold: num({ int: true, ge: 0 }).default(D.optimizer.pdThreshold),
    fallbacks: num({ int: true, ge: 0, le: MAX_FALLBACKS }).default(D.optimizer.fallbacks),
    shedSheddable: bool().default(D.optimizer.shedSheddable),
  },
  "optimizer options",
);

const TopologySchema = mapping(
  {
    kvBytesPerToken: num({ int: true, ge: 0 }).default(D.topology.kvBytesPerToken),
    bandwidthGBps: section(
      mapping(
        {
          node: num({ gt: 0 }).default(D.topology.bandwidthGBps.node),
          rack: num({ gt: 0 }).default(D.topology.bandwidthGBps.rack),
          cross: num({ gt: 0 }).default(D.topology.bandwidthGBps.cross),
        },
        "node, rack, cross",
      ),
    ),
  },
  "kvBytesPerToken, bandwidthGBps",
);

const predictorKind = () => oneOf(["profile", "online", "remote"]);

const PredictorsSchema = mapping(
  {
    prefillTtft: predictorKind().default(D.predictors.prefillTtft),
    decodeTtft: predictorKind().default(D.predictors.decodeTtft),
    decodeTpot: predictorKind().default(D.predictors.decodeTpot),
    profiles: z
      .record(z.string(), text(), { error: "must be a mapping of profile name to CSV path" })
      .prefault({}),
    defaultProfile: name().default(D.predictors.defaultProfile),
    tpEfficiency: num({ gt: 0, le: 1 }).default(D.predictors.tpEfficiency),
    refreshMs: timerMs().default(D.predictors.refreshMs),
    remote: section(
      mapping(
        {
          timeoutMs: timerMs().default(D.predictors.remote.timeoutMs),
          gridPoints: num({ int: true, ge: 2, le: 64 }).default(D.predictors.remote.gridPoints),
          /** Training entries kept while the service is down; the oldest are dropped (and counted) beyond it. */
          trainingBufferSize: num({ int: true, ge: 100, le: 1_000_000 }).default(D.predictors.remote.trainingBufferSize),
          trainingFlushMs: timerMs(10).default(D.predictors.remote.trainingFlushMs),
        },
        "timeoutMs, gridPoints, trainingBufferSize, trainingFlushMs",
      ),
    ),
    online: section(
      mapping(
        {
          /** The quantile the online correction tracks (0.9: p90). */
          quantile: num({ gt: 0, lt: 1 }).default(D.predictors.online.quantile),
          /** Samples a pod needs before its own correction replaces its hardware class's. */
          minPodSamples: num({ int: true, ge: 1 }).default(D.predictors.online.minPodSamples),
        },
        "quantile, minPodSamples",
      ),
    ),
  },
  "predictor options",
);

const KubernetesSchema = mapping(
  {
    namespace: text().default(D.pods.kubernetes.namespace),
    /** Port of the inference server on each discovered pod (its address is podIP:port). */
    port: num({ int: true, ge: 1, le: 65535 }).default(D.pods.kubernetes.port),
    /** Path of the pod's Prometheus endpoint on the same port; "" leaves discovered pods unscraped. */
    metricsPath: z
      .string({ error: "must be \"\" or a path starting with /" })
      .refine((s) => s === "" || s.startsWith("/"), { error: "must be \"\" or a path starting with /" })
      .default(D.pods.kubernetes.metricsPath),
    /** Full re-list this often, on top of the watch. */
    resyncMs: timerMs(1000).default(D.pods.kubernetes.resyncMs),
    /** Pool name -> label selector of that pool's inference pods. */
    selectors: z
      .record(z.string(), text(), { error: "must be a mapping of pool name to label selector" })
      .prefault({}),
  },
  "namespace, port, metricsPath, resyncMs, selectors",
);

const PodsSchema = mapping(
  {
    scrapeIntervalMs: timerMs().default(D.pods.scrapeIntervalMs),
    scrapeTimeoutMs: timerMs().default(D.pods.scrapeTimeoutMs),
    staleAfterMs: num({ int: true, ge: 1 }).default(D.pods.staleAfterMs),
    /** Absent: REFLECT_DELAY_SCRAPES x scrapeIntervalMs. */
    reflectDelayMs: num({ int: true, ge: 0 }).optional(),
    inflightTtlFactor: num({ ge: 1 }).default(D.pods.inflightTtlFactor),
    /** Scrapes in progress at once, across all pods. */
    scrapeConcurrency: num({ int: true, ge: 1, le: 4096 }).default(D.pods.scrapeConcurrency),
    kubernetes: KubernetesSchema.optional(),
  },
  "pod options",
).transform((p) => ({ ...p, reflectDelayMs: p.reflectDelayMs ?? REFLECT_DELAY_SCRAPES * p.scrapeIntervalMs }));

const PlannerSchema = mapping(
  {
    adjustmentIntervalMs: timerMs(),
    scaleUpThreshold: num({ gt: 0, le: 1 }),
    bufferRatio: num({ gt: 0, le: 1 }),
    /** The latency percentile the planner watches, e.g. 95 for p95. */
    percentile: num({ gt: 0, lt: 100 }),
    /** Fraction of requests allowed to miss the SLO, in [0, 1]. */
    violationsAllowed: num({ ge: 0, le: 1 }),
    loadPredictor: oneOf(["constant", "arima", "kalman"]),
    proactive: bool(),
    burstProtection: bool(),
    costOptimization: bool(),
    /** Absent: 2 adjustment intervals (half that under cost optimisation). */
    cooldownMs: num({ int: true, ge: 0 }).optional(),
    /** Forced step-ups wait this long after a scale-up for new workers to start. Absent: 60 s. */
    startupDelayMs: num({ int: true, ge: 0 }).optional(),
    /** A burst is a 10 s arrival rate above the prediction x this. Absent: 1.5. */
    burstFactor: num({ ge: 1 }).optional(),
    /** A scale-down waits until the sized target has been lower for this long. Absent: the cooldown's length. */
    scaleDownWindowMs: num({ int: true, ge: 0 }).optional(),
  },
  "planner options",
);

const PodSchema = mapping(
  {
    address: address(),
    role: oneOf(["prefill", "decode", "both"]),
    node: text().optional(),
    rack: text().optional(),
    /** Absent: the pool's tp. */
    tp: num({ int: true, ge: 1, le: 64 }).optional(),
    /** Absent: predictors.defaultProfile. */
    profile: name().optional(),
    /** Absent: the pod is unscraped; its state is its in-flight load alone. */
    metricsUrl: httpUrl().optional(),
    draining: bool().default(false),
  },
  "address, role, node, rack, tp, profile, metricsUrl, draining",
);

/** A pod as the push API and the configuration describe it (without its pool). */
export const PodInputSchema = PodSchema;

const PoolSchema = mapping(
  {
    name: name(),
    sloLevel: name().transform((s) => s.toLowerCase()),
    sloPriority: num({ int: true, ge: 1 }),
    description: z.string({ error: "must be a string" }),
    // As a request's SLO may be: a larger target would fail every pick of the pool that takes it.
    targets: mapping({ ttftMs: num({ gt: 0, le: MAX_SLO_MS }), tpotMs: num({ gt: 0, le: MAX_SLO_MS }) }, "ttftMs, tpotMs"),
    expected: mapping({ isl: num({ int: true, ge: 1 }), osl: num({ int: true, ge: 1 }) }, "isl, osl"),
    tp: num({ int: true, ge: 1, le: 64 }),
    maxGpus: num({ int: true, ge: 1 }),
    gpuMemoryUtilization: num({ gt: 0, le: 1 }),
    planner: PlannerSchema,
    pods: z.array(PodSchema, { error: "must be a list of pods" }),
  },
  "pool fields",
);

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Fills a configured pool's missing fields from the default pool of its level (SPEC.md §6), so
 * `{sloLevel: high, pods: [...]}` is a complete pool. Values the user wrote are kept as written, so
 * validation reports them; name and sloLevel default to each other.
 */
function withLevelDefaults(raw: unknown): unknown {
  if (!isPlainObject(raw)) return raw;
  const written = typeof raw.sloLevel === "string" ? raw.sloLevel : raw.name;
  const level = typeof written === "string" ? written.toLowerCase() : undefined;
  const row = DEFAULTS.pools.find((p) => p.sloLevel === level);
  const medium = DEFAULTS.pools.find((p) => p.sloLevel === "medium")!;
  const base: Record<string, unknown> = row
    ? { ...row }
    : {
        description: "",
        expected: medium.expected,
        tp: medium.tp,
        maxGpus: medium.maxGpus,
        gpuMemoryUtilization: medium.gpuMemoryUtilization,
        planner: medium.planner,
        pods: [],
      };
  delete base.name;
  delete base.sloLevel;
  const out: Record<string, unknown> = { ...base, ...raw };
  for (const key of ["targets", "expected", "planner", "pods"]) {
    if (raw[key] === null) out[key] = base[key];
  }
  for (const key of ["targets", "expected", "planner"]) {
    if (isPlainObject(base[key]) && isPlainObject(raw[key])) out[key] = { ...base[key], ...raw[key] };
  }
  if (out.name === undefined && typeof raw.sloLevel === "string") out.name = raw.sloLevel.toLowerCase();
  if (out.sloLevel === undefined && typeof raw.name === "string") out.sloLevel = raw.name;
  return out;
}

const ClusterSchema = mapping(
  {
    gpuBudget: num({ int: true, ge: 1 }).default(D.cluster.gpuBudget),
    /** Price of one GPU-hour, any currency; used to report cost next to GPU-hours. */
    gpuHourPrice: num({ ge: 0 }).default(D.cluster.gpuHourPrice),
  },
  "gpuBudget, gpuHourPrice",
);

const WorkersSchema = mapping(
  {
    /** 0 runs every batch on the main thread. */
    threads: num({ int: true, ge: 0, le: 256 }).default(D.workers.threads),
    /** Batches with fewer (pool pairs x requests) than this run inline on the main thread. */
    inlineBelowPairs: num({ int: true, ge: 0 }).default(D.workers.inlineBelowPairs),
    /** Batches a worker thread holds at once (it runs them in turn): the next is there when one ends. */
    queuePerThread: num({ int: true, ge: 1, le: 64 }).default(D.workers.queuePerThread),
    batchCapacity: num({ int: true, ge: 1, le: 4096 }).default(D.workers.batchCapacity),
    /** 0 batches what arrived in the same event-loop turn. */
    batchWindowUs: num({ int: true, ge: 0, le: 100_000 }).default(D.workers.batchWindowUs),
    /** The worker threads' nice value (Linux): above the main thread's 0, so it gets a core first. */
    nice: num({ int: true, ge: 0, le: 19 }).default(D.workers.nice),
  },
  "threads, inlineBelowPairs, queuePerThread, batchCapacity, batchWindowUs, nice",
);

const WorkloadSchema = mapping(
  {
    kind: oneOf(["Deployment", "StatefulSet"]),
    name: text(),
    namespace: text().optional(),
  },
  "kind, name, namespace",
);

const PlannersSchema = mapping(
  {
    /** How decisions are applied; `simulator` is set by the simulator itself, not in a file. */
    actuator: oneOf(["advisory", "kubernetes", "webhook"]).default(D.planners.actuator),
    apply: section(
      mapping(
        {
          attempts: num({ int: true, ge: 1, le: 100 }).default(D.planners.apply.attempts),
          initialBackoffMs: timerMs().default(D.planners.apply.initialBackoffMs),
          maxBackoffMs: timerMs().default(D.planners.apply.maxBackoffMs),
        },
        "attempts, initialBackoffMs, maxBackoffMs",
      ),
    ),
    webhook: mapping(
      {
        url: httpUrl(),
        timeoutMs: timerMs().default(D.planners.webhook.timeoutMs),
        // Checked as fetch checks them, which refused a bad one at every decision.
        headers: z
          .record(
            z.string().regex(HEADER_NAME_RE, { error: "must be a header name (letters, digits and !#$%&'*+-.^_`|~)" }),
            z
              .string({ error: "must be a string" })
              .refine((v) => !/[\0\r\n]|[^\0-\xff]/.test(v), { error: "must be a header value (no line breaks or NUL, Latin-1 characters only)" }),
            { error: "must be a mapping of header to value" },
          )
          .optional(),
      },
      "url, timeoutMs, headers",
    ).optional(),
    kubernetes: mapping(
      {
        /**
         * The namespace of the pools' workloads, where headroom needs `get` and `update` on their scale
         * (the shipped RBAC grants them in llm-d). No default: required unless every workload names its own.
         */
        namespace: text().optional(),
        requestTimeoutMs: timerMs().default(D.planners.kubernetes.requestTimeoutMs),
        conflictRetries: num({ int: true, ge: 0, le: 100 }).default(D.planners.kubernetes.conflictRetries),
        /** Pool name -> the Deployment or StatefulSet of each role it scales. */
        workloads: z
          .record(
            z.string(),
            mapping({ prefill: WorkloadSchema.optional(), decode: WorkloadSchema.optional(), both: WorkloadSchema.optional() }, "prefill, decode, both"),
            { error: "must be a mapping of pool name to workloads" },
          )
          .prefault({}),
      },
      "namespace, requestTimeoutMs, conflictRetries, workloads",
    ).optional(),
  },
  "actuator, apply, webhook, kubernetes",
);

const RootSchema = z.strictObject(
  {
    server: section(ServerSchema),
    optimizer: section(OptimizerSchema),
    topology: section(TopologySchema),
    predictors: section(PredictorsSchema),
    pods: section(PodsSchema),
    pools: z
      .preprocess(
        (v) => (v === null ? undefined : v),
        z
          .array(z.preprocess(withLevelDefaults, PoolSchema), { error: "must be a list of pools" })
          .min(1, { error: "must list at least one pool (leave pools out for the default three)" })
          .prefault(() => DEFAULTS.pools.map((p) => ({ ...p }))),
      ),
    cluster: section(ClusterSchema),
    workers: section(WorkersSchema),
    planners: section(PlannersSchema),
  },
  { error: "must be a mapping of the sections server, optimizer, topology, predictors, pods, pools, cluster, workers, planners" },
);

/** Checks that span fields; each issue names the field to change. */
/** Remote predictor values stay fresh for this many refresh periods (src/predictors/remote.ts). */
export const REMOTE_FRESH_REFRESHES = 3;

export const ConfigSchema = RootSchema.superRefine((c, ctx) => {
  const at = (path: (string | number)[], message: string, input: unknown) =>
    ctx.addIssue({ code: "custom", path, message, input });
  // For values the schema rewrote (sloLevel is lower-cased), report what the file says.
  const asWritten = (path: (string | number)[], message: string, input: unknown) =>
    ctx.addIssue({ code: "custom", path, message, input, params: { asWritten: true } });

  if (c.optimizer.ttftWeight === 0 && c.optimizer.tpotWeight === 0) {
    at(["optimizer", "ttftWeight"], "must be > 0 when optimizer.tpotWeight is 0 (one weight must be > 0)", 0);
  }

  // fetch joins header names that differ only in case into one value ("Bearer a, Bearer b"), and the
  // body is JSON whatever a content-type header says.
  const headers = c.planners.webhook?.headers ?? {};
  const headerNames = new Map<string, string>();
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    const other = headerNames.get(lower);
    if (other !== undefined) at(["planners", "webhook", "headers"], `${other} and ${name} are one header (names are unique in any letter case)`, headers);
    else if (lower === "content-type") at(["planners", "webhook", "headers"], `${name} is set by headroom (the body is JSON)`, headers);
    headerNames.set(lower, name);
  }

  if (c.pods.staleAfterMs <= c.pods.scrapeIntervalMs) {
    at(["pods", "staleAfterMs"], `must be > pods.scrapeIntervalMs (${c.pods.scrapeIntervalMs})`, c.pods.staleAfterMs);
  }

  for (const profile of Object.keys(c.predictors.profiles)) {
    if (!NAME_RE.test(profile)) {
      at(["predictors", "profiles", profile], "profile names must be letters, digits, '.', '_' or '-' (at most 63)", profile);
    }
  }
  const knownProfiles = new Set([BUILTIN_PROFILE, ...Object.keys(c.predictors.profiles)]);
  const profileList = [...knownProfiles].join(", ");
  if (!knownProfiles.has(c.predictors.defaultProfile)) {
    at(["predictors", "defaultProfile"], `must name a profile (${profileList})`, c.predictors.defaultProfile);
  }

  const poolByName = new Map<string, number>();
  const poolByLevel = new Map<string, number>();
  const podByAddress = new Map<string, string>();
  let minimumGpus = 0;
  c.pools.forEach((pool, i) => {
    const sameName = poolByName.get(pool.name);
    if (sameName !== undefined) at(["pools", i, "name"], `must be unique (pools[${sameName}] has it too)`, pool.name);
    else poolByName.set(pool.name, i);
    const sameLevel = poolByLevel.get(pool.sloLevel);
    if (sameLevel !== undefined) {
      asWritten(["pools", i, "sloLevel"], `must be unique, case-insensitively (pools[${sameLevel}] has it too)`, pool.sloLevel);
    } else poolByLevel.set(pool.sloLevel, i);
    if (pool.tp > pool.maxGpus) at(["pools", i, "tp"], `must be <= maxGpus (${pool.maxGpus})`, pool.tp);
    minimumGpus += pool.tp;
    pool.pods.forEach((pod, j) => {
      const key = normalizeAddress(pod.address);
      const other = podByAddress.get(key);
      if (other === undefined) podByAddress.set(key, `pools[${i}].pods[${j}]`);
      else at(["pools", i, "pods", j, "address"], `must be unique across pools (${other} has it too)`, pod.address);
      if (pod.profile !== undefined && !knownProfiles.has(pod.profile)) {
        at(["pools", i, "pods", j, "profile"], `must name a profile (${profileList})`, pod.profile);
      }
    });
  });

  if (minimumGpus > c.cluster.gpuBudget) {
    at(
      ["cluster", "gpuBudget"],
      `must cover every pool's minimum of one worker (${minimumGpus} GPUs: the sum of the pools' tp)`,
      c.cluster.gpuBudget,
    );
  }

  const apply = c.planners.apply;
  if (apply.maxBackoffMs < apply.initialBackoffMs) {
    at(["planners", "apply", "maxBackoffMs"], `must be >= planners.apply.initialBackoffMs (${apply.initialBackoffMs})`, apply.maxBackoffMs);
  }
  if (c.planners.actuator === "webhook" && c.planners.webhook === undefined) {
    at(["planners", "webhook"], "must be set (with a url) when planners.actuator is webhook", undefined);
  }
  if (c.planners.actuator === "kubernetes" && c.planners.kubernetes === undefined) {
    at(["planners", "kubernetes"], "must be set (with workloads) when planners.actuator is kubernetes", undefined);
  }
  for (const pool of Object.keys(c.planners.kubernetes?.workloads ?? {})) {
    if (!poolByName.has(pool)) {
      at(["planners", "kubernetes", "workloads", pool], `must name a pool (${[...poolByName.keys()].join(", ")})`, pool);
    }
  }
  const kube = c.planners.kubernetes;
  if (c.planners.actuator === "kubernetes" && kube !== undefined) {
    // A decision needing a role without a workload could never be applied (it would fail at every
    // interval): every pool needs its `both` workload, and prefill and decode ones when it may run
    // more than one worker.
    for (const pool of c.pools) {
      const maxWorkers = Math.max(1, Math.floor(pool.maxGpus / pool.tp));
      const roles = maxWorkers > 1 ? (["prefill", "decode", "both"] as const) : (["both"] as const);
      for (const role of roles) {
        if (kube.workloads[pool.name]?.[role] !== undefined) continue;
        const why =
          role === "both"
            ? `pool ${pool.name} always runs at least one both worker`
            : `pool ${pool.name} may run ${maxWorkers} workers (maxGpus ${pool.maxGpus} / tp ${pool.tp}), ${role} workers among them`;
        at(["planners", "kubernetes", "workloads", pool.name, role], `must be set when planners.actuator is kubernetes: ${why}`, undefined);
      }
    }
    const unplaced = Object.values(kube.workloads).some((w) => Object.values(w).some((ref) => ref !== undefined && ref.namespace === undefined));
    if (kube.namespace === undefined && unplaced) {
      at(
        ["planners", "kubernetes", "namespace"],
        "must be set when planners.actuator is kubernetes and a workload names no namespace: the namespace of the pools' workloads (the shipped RBAC grants scale in llm-d)",
        undefined,
      );
    }
  }

  const predictors = c.predictors;
  const remoteUsed = [predictors.prefillTtft, predictors.decodeTtft, predictors.decodeTpot].includes("remote");
  // A call allowed longer than remote values stay fresh could answer only with values too old to use.
  const freshMs = REMOTE_FRESH_REFRESHES * predictors.refreshMs;
  if (remoteUsed && predictors.remote.timeoutMs >= freshMs) {
    at(
      ["predictors", "remote", "timeoutMs"],
      `must be below the remote values' freshness limit, ${REMOTE_FRESH_REFRESHES} x predictors.refreshMs (${freshMs}): a later answer is never used`,
      predictors.remote.timeoutMs,
    );
  }

  for (const pool of Object.keys(c.pods.kubernetes?.selectors ?? {})) {
    if (!poolByName.has(pool)) {
      at(["pods", "kubernetes", "selectors", pool], `must name a pool (${[...poolByName.keys()].join(", ")})`, pool);
    }
  }
});

export type HeadroomConfig = z.output<typeof ConfigSchema>;
export type ServerConfig = HeadroomConfig["server"];
export type PredictorsConfig = HeadroomConfig["predictors"];
export type PodsConfig = HeadroomConfig["pods"];
export type PoolConfig = HeadroomConfig["pools"][number];
export type PodConfig = PoolConfig["pods"][number];
export type PlannerConfig = PoolConfig["planner"];
export type ClusterConfig = HeadroomConfig["cluster"];
export type WorkersConfig = HeadroomConfig["workers"];
export type PlannersConfig = HeadroomConfig["planners"];

// The kernel consumes these sections as they are: keep them exactly the kernel's types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type OptimizerSectionIsOptimizerParams = Assert<Same<HeadroomConfig["optimizer"], OptimizerParams>>;
type TopologySectionIsTopologyParams = Assert<Same<HeadroomConfig["topology"], TopologyParams>>;
