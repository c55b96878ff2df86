// The `remote` predictor (SPEC.md §4): a client for the public llm-d latency-predictor service, one
// training server and one or more prediction servers per quantity, with the profile as its fallback.
//
// Rows. One row per pod and ISL grid point, only for the pods that can play the quantity's role
// (prefill-ttft: prefill and both; decode-*: decode and both). Every row of a pod carries the same pod
// features; `input_token_length` is the grid point, which the kernel reads as uncached prompt tokens for
// prefill-ttft and as the full prompt for the decode quantities, so `prefix_cache_score` is always 0 and
// `num_tokens_generated` 0 (a request at admission). Training entries are built the same way, so the
// service learns on exactly the features it is later asked about.
//
// Fresh. A pod's remote values are used while the pod state they were predicted from (taken when the
// refresh started) is at most `maxAgeMs` old (default FRESH_REFRESHES refresh periods) and the refresh
// used the grid being filled (or one it refines: the pool adds knots at KV capacities). A failed call
// leaves its pods' earlier values in use until they age out; past that the pod gets the profile's
// values. An answer that lands already older than that is a `stale` fallback, and a timeout that lets
// calls run that long is refused. Nothing waits: `refresh` settles within the timeout (plus JSON work)
// and never rejects, `fill` is synchronous.

import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Counter, type Registry } from "prom-client";
import type { Clock, Cancel } from "../clock.js";
import { every } from "../clock.js";
import { DEFAULTS, REMOTE_FRESH_REFRESHES, type PredictorsConfig } from "../config/schema.js";
import { ConfigError, withoutUrlCredentials } from "../errors.js";
import { OncePerCause, type Logger } from "../log.js";
import { registered } from "../metrics.js";
import type { PodRole } from "../pods/types.js";
import { gridPosition, interpolate } from "../kernel/twin.js";
import { beyondKv, MAX_PREDICTION_MS, type ProfilePredictor } from "./profile.js";
import type { PodFeatures, PoolPredictions, Predictor, Quantity } from "./types.js";
import { QUANTITIES } from "./types.js";

/** The service's bulk endpoints take at most this many rows (pydantic max_items) per call. */
export const MAX_ROWS_PER_CALL = 10_000;
/** Training entries per upload, as SPEC.md §4 asks. */
export const MAX_ENTRIES_PER_UPLOAD = 100;
/**
 * A training upload is abandoned after this long. It is not the flush period: a server may take the body
 * and answer late, and an upload given up on is not resent (the server may have it: resending would train
 * it on duplicates), so the wait is long. It delays no flush tick: uploads are serialised per quantity, a
 * tick finding one running starts nothing, and training is off the pick path.
 */
export const TRAINING_UPLOAD_TIMEOUT_MS = 10_000;
/**
 * Largest prediction accepted, per field. A feature outside the service's training range can make its
 * model extrapolate; a TTFT beyond ten minutes or a TPOT beyond ten seconds is no SLO's business and
 * says the model is broken, so the call's answer is discarded.
 */
export const MAX_REMOTE_TTFT_MS = 600_000;
export const MAX_REMOTE_TPOT_MS = 10_000;
/** Counts sent as features are bounded (the service works in 32-bit columns); a larger count is a bug upstream. */
export const MAX_FEATURE_COUNT = 2 ** 31 - 1;
/** A response may not exceed this many bytes per row sent (the real service answers about 200). */
const MAX_RESPONSE_BYTES_PER_ROW = 1024;
/** Remote values stay fresh for this many refresh periods (the configuration checks timeoutMs against it). */
export const FRESH_REFRESHES = REMOTE_FRESH_REFRESHES;

export const CALLS_METRIC = "llm_d_inference_scheduler_pd_slo_predictor_calls_total";

/**
 * Why a prediction call fell back to the profile (the `reason` label): the call failed, its answer came
 * after the values' freshness limit (`stale`), or the predictor's thread was down (`thread_down`).
 */
export type FallbackReason = "timeout" | "http_error" | "not_ready" | "bad_response" | "connection" | "stale" | "thread_down";

/**
 * Why training entries were dropped (the `reason` label): the buffer was full (the oldest give way), the
 * training server refused their upload with a 4xx a retry cannot change, their upload got no answer in
 * time (the server may have them, so they are not resent), or the predictor's thread was down.
 */
export type TrainingDropReason = "buffer_full" | "refused" | "timeout" | "thread_down";

const ENV_PREFIX: Record<Quantity, string> = {
  "prefill-ttft": "PREFILL_TTFT",
  "decode-ttft": "DECODE_TTFT",
  "decode-tpot": "DECODE_TPOT",
};

const CONFIG_KEY: Record<Quantity, "prefillTtft" | "decodeTtft" | "decodeTpot"> = {
  "prefill-ttft": "prefillTtft",
  "decode-ttft": "decodeTtft",
  "decode-tpot": "decodeTpot",
};

/** The field of the service's answer each quantity reads, and its cap. */
const ANSWER: Record<Quantity, { field: "ttft_ms" | "tpot_ms"; maxMs: number }> = {
  "prefill-ttft": { field: "ttft_ms", maxMs: MAX_REMOTE_TTFT_MS },
  "decode-ttft": { field: "ttft_ms", maxMs: MAX_REMOTE_TTFT_MS },
  "decode-tpot": { field: "tpot_ms", maxMs: MAX_REMOTE_TPOT_MS },
};

// ---- endpoints from the environment ----

export interface RemoteEndpoints {
  /** Base URL of the training server (POST {url}/add_training_data_bulk). */
  trainingUrl: string;
  /** Base URLs of the prediction servers; calls go round-robin over them. */
  predictionUrls: readonly string[];
}

export type RemoteEndpointsByQuantity = Partial<Record<Quantity, RemoteEndpoints>>;

export function trainingUrlVariable(quantity: Quantity): string {
  return `${ENV_PREFIX[quantity]}_TRAINING_URL`;
}

export function predictionUrlVariable(quantity: Quantity): string {
  return `${ENV_PREFIX[quantity]}_PREDICTION_URL`;
}

/** The quantities a predictors section configures as `remote`. */
export function remoteQuantities(config: Pick<PredictorsConfig, "prefillTtft" | "decodeTtft" | "decodeTpot">): Quantity[] {
  return QUANTITIES.filter((q) => config[CONFIG_KEY[q]] === "remote");
}

type Env = Readonly<Record<string, string | undefined>>;

/** http(s), without a user or password (fetch refuses a URL with them, at every call). */
function isHttpUrl(s: string): boolean {
  if (!URL.canParse(s)) return false;
  const url = new URL(s);
  return (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "";
}

/** Trailing slashes go, so `${url}/predict/bulk/strict` has one. */
function normalise(url: string): string {
  return url.replace(/\/+$/, "");
}

function splitList(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * The endpoints the environment gives for `quantities` (default all): a quantity is present when its
 * training URL and at least one prediction URL are set and all are http(s) URLs. checkRemoteConfig
 * says what is wrong with the others.
 */
export function remoteEndpointsFromEnv(env: Env, quantities: readonly Quantity[] = QUANTITIES): RemoteEndpointsByQuantity {
  const out: RemoteEndpointsByQuantity = {};
  for (const q of quantities) {
    const training = splitList(env[trainingUrlVariable(q)]);
    const prediction = splitList(env[predictionUrlVariable(q)]);
    if (training.length !== 1 || prediction.length === 0) continue;
    if (![...training, ...prediction].every(isHttpUrl)) continue;
    out[q] = { trainingUrl: normalise(training[0]), predictionUrls: prediction.map(normalise) };
  }
  return out;
}

/**
 * Problems (a quantity configured `remote` whose variables are missing or not http(s) URLs) make the
 * configuration invalid; warnings name variables set for quantities not configured `remote`, which are ignored.
 */
export function checkRemoteConfig(
  config: Pick<PredictorsConfig, "prefillTtft" | "decodeTtft" | "decodeTpot">,
  env: Env,
): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const remote = new Set(remoteQuantities(config));
  for (const q of QUANTITIES) {
    const trainingVar = trainingUrlVariable(q);
    const predictionVar = predictionUrlVariable(q);
    const training = splitList(env[trainingVar]);
    const prediction = splitList(env[predictionVar]);
    if (!remote.has(q)) {
      const set = [trainingVar, predictionVar].filter((v) => (env[v] ?? "").trim() !== "");
      if (set.length > 0) {
        warnings.push(`${set.join(" and ")} ignored: predictors.${CONFIG_KEY[q]} is ${config[CONFIG_KEY[q]]}, not remote`);
      }
      continue;
    }
    const why = `predictors.${CONFIG_KEY[q]} is remote`;
    if (q === "decode-ttft") {
      warnings.push(
        "predictors.decodeTtft is remote, but headroom sends its service no training: the decode wait is not learned from reports (a report's TTFT cannot be split between prefill and decode); it predicts only once trained elsewhere, and the profile answers meanwhile",
      );
    }
    if (training.length === 0) problems.push(`${trainingVar} must be set to the training server's http(s) URL (${why})`);
    else if (training.length > 1) problems.push(`${trainingVar} must be one http(s) URL, got ${withoutUrlCredentials(JSON.stringify(env[trainingVar]))}`);
    else if (!isHttpUrl(training[0])) problems.push(`${trainingVar} must be an http(s) URL without a user or password, got ${withoutUrlCredentials(JSON.stringify(training[0]))}`);
    if (prediction.length === 0) {
      problems.push(`${predictionVar} must be set to the prediction servers' http(s) URLs, comma-separated (${why})`);
    }
    for (const url of prediction) {
      if (!isHttpUrl(url)) problems.push(`${predictionVar} must hold http(s) URLs without a user or password, got ${withoutUrlCredentials(JSON.stringify(url))}`);
    }
  }
  return { problems, warnings };
}

// ---- rows ----

/** One row of the service's PredictionRequest, with the feature names it uses. */
export interface FeatureRow {
  kv_cache_percentage: number;
  input_token_length: number;
  num_request_waiting: number;
  num_request_running: number;
  num_tokens_generated: number;
  prefix_cache_score: number;
  pod_type: "prefill" | "decode";
  prefill_tokens_in_flight: number;
  decode_tokens_in_flight: number;
}

/** One entry of the service's TrainingEntry: a row, what happened, and when (ISO 8601). */
export interface TrainingEntry extends FeatureRow {
  actual_ttft_ms: number;
  actual_tpot_ms: number;
  timestamp: string;
}

export function podTypeOf(quantity: Quantity): "prefill" | "decode" {
  return quantity === "prefill-ttft" ? "prefill" : "decode";
}

/** Whether a pod of this role is a candidate for the quantity (prefill candidates for prefill-ttft). */
export function servesRole(quantity: Quantity, role: PodRole): boolean {
  return quantity === "prefill-ttft" ? role !== "decode" : role !== "prefill";
}

function count(x: number): number | null {
  if (!Number.isFinite(x) || x < 0) return null;
  const n = Math.round(x);
  return n <= MAX_FEATURE_COUNT ? n : null;
}

/**
 * The row for a pod at `inputTokens`, or a reason it cannot be sent (one bad row makes the service
 * reject the whole call with 422). Queues count what the next scrape would show: scraped waiting and
 * running plus our picks it does not reflect yet; KV use likewise includes our in-flight decode tokens.
 */
export function featureRow(quantity: Quantity, pod: PodFeatures, inputTokens: number): FeatureRow | string {
  const tokens = count(inputTokens);
  const waiting = count(pod.waiting + pod.prefillRequestsInFlight);
  const running = count(pod.running + pod.decodeRequestsInFlight);
  const prefillTokens = count(pod.prefillTokensInFlight);
  const decodeTokens = count(pod.decodeTokensInFlight);
  if (tokens === null) return `input tokens ${inputTokens} is not a count`;
  if (waiting === null || running === null) {
    return `waiting/running ${pod.waiting}+${pod.prefillRequestsInFlight}/${pod.running}+${pod.decodeRequestsInFlight} are not counts`;
  }
  if (prefillTokens === null || decodeTokens === null) {
    return `tokens in flight ${pod.prefillTokensInFlight}/${pod.decodeTokensInFlight} are not counts`;
  }
  const kvUsed = pod.kvTokensUsed + pod.decodeTokensInFlight;
  if (!(pod.kvCapacityTokens > 0) || !Number.isFinite(pod.kvCapacityTokens) || !Number.isFinite(kvUsed)) {
    return `KV use ${pod.kvTokensUsed} of capacity ${pod.kvCapacityTokens} gives no percentage`;
  }
  return {
    kv_cache_percentage: Math.min(1, Math.max(0, kvUsed / pod.kvCapacityTokens)),
    input_token_length: tokens,
    num_request_waiting: waiting,
    num_request_running: running,
    num_tokens_generated: 0,
    prefix_cache_score: 0,
    pod_type: podTypeOf(quantity),
    prefill_tokens_in_flight: prefillTokens,
    decode_tokens_in_flight: decodeTokens,
  };
}

// ---- metrics ----

/** A counter on `registry`, reusing one another module registered under the same name. */
export function counterOn<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return registered(registry, name, Counter<L>, () => new Counter({ name, help, labelNames, registers: [registry] }));
}

interface RemoteMetrics {
  calls: Counter<"predictor" | "status">;
  fallbacks: Counter<"predictor" | "reason">;
  trainingDropped: Counter<"predictor" | "reason">;
  trainingSent: Counter<"predictor">;
  invalidRows: Counter<"predictor">;
}

/** The remote predictor's counters: name, help and label names (the thread's are mirrored under the same). */
export const REMOTE_COUNTERS = Object.freeze({
  calls: { name: CALLS_METRIC, help: "Latency predictor calls by predictor and status", labels: ["predictor", "status"] },
  fallbacks: { name: "headroom_predictor_fallbacks_total", help: "Remote prediction calls whose pods fell back to the profile, by reason", labels: ["predictor", "reason"] },
  trainingDropped: {
    name: "headroom_predictor_training_dropped_total",
    help: "Training entries dropped, by reason: buffer_full (oldest first), refused (a 4xx a retry cannot change), timeout (maybe delivered, not resent), thread_down",
    labels: ["predictor", "reason"],
  },
  trainingSent: { name: "headroom_predictor_training_sent_total", help: "Training entries the training server accepted", labels: ["predictor"] },
  invalidRows: { name: "headroom_predictor_invalid_rows_total", help: "Prediction rows and training entries not sent because a feature was invalid", labels: ["predictor"] },
} as const);

function remoteMetrics(registry: Registry): RemoteMetrics {
  const c = REMOTE_COUNTERS;
  return {
    calls: counterOn(registry, c.calls.name, c.calls.help, c.calls.labels),
    fallbacks: counterOn(registry, c.fallbacks.name, c.fallbacks.help, c.fallbacks.labels),
    trainingDropped: counterOn(registry, c.trainingDropped.name, c.trainingDropped.help, c.trainingDropped.labels),
    trainingSent: counterOn(registry, c.trainingSent.name, c.trainingSent.help, c.trainingSent.labels),
    invalidRows: counterOn(registry, c.invalidRows.name, c.invalidRows.help, c.invalidRows.labels),
  };
}

// ---- the training buffer ----

/** A FIFO holding at most `capacity` items; adding to a full one drops the oldest. */
export class BoundedQueue<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** Appends; returns how many of the oldest were dropped to make room. */
  push(item: T): number {
    let dropped = 0;
    if (this.size >= this.capacity) {
      this.head++;
      dropped = 1;
    }
    this.items.push(item);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return dropped;
  }

  /** Removes and returns up to `max` of the oldest. */
  take(max: number): T[] {
    const out = this.items.slice(this.head, this.head + max);
    this.head += out.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return out;
  }

  /** Puts items older than everything held back in front; returns how many (the oldest of them) did not fit. */
  putBack(older: readonly T[]): number {
    const room = Math.max(0, this.capacity - this.size);
    const kept = older.slice(Math.max(0, older.length - room));
    this.items = [...kept, ...this.items.slice(this.head)];
    this.head = 0;
    return older.length - kept.length;
  }
}

// ---- the predictor ----

/**
 * Overwrites the curve of `quantity` with the remote values of pods that have fresh ones (from a
 * refresh at most maxAgeMs ago, on the grid being filled or on one it refines); the others keep what is
 * already there (the profile). On a refined grid (a pool adds knots at its pods' KV capacities) a knot
 * takes the value the kernel would interpolate on the refresh's grid, so the remote curve is unchanged.
 */
export function overlayRemote(
  quantity: Quantity,
  pods: readonly PodFeatures[],
  out: PoolPredictions,
  latest: ReadonlyMap<string, RemoteValues> | undefined,
  nowMs: number,
  maxAgeMs: number,
): void {
  if (latest === undefined) return;
  const n = out.pods;
  const grid = out.gridTokens;
  const curve = quantity === "prefill-ttft" ? out.prefillMs : quantity === "decode-ttft" ? out.decodeWaitMs : out.tpotMs;
  // A refresh's entries share its grid object: one placement per grid seen.
  const placements = new Map<Float64Array, GridPlacement>();
  for (let i = 0; i < pods.length; i++) {
    const entry = latest.get(pods[i].address);
    if (entry === undefined || nowMs - entry.atMs > maxAgeMs) continue;
    let at = placements.get(entry.grid);
    if (at === undefined) placements.set(entry.grid, (at = sameGrid(entry.grid, grid) ? "exact" : placeOn(entry.grid, grid)));
    if (at === null) continue;
    const v = entry.values;
    for (let g = 0; g < grid.length; g++) curve[g * n + i] = at === "exact" ? v[g] : interpolate(v, 1, v.length, at[g], 0);
    // A prompt larger than the pod's KV cache never fits there, whatever the service answers (it knows
    // no capacity): the profile's saturated wait, from the knot the pool's grid has just above it.
    if (quantity === "decode-ttft") for (let g = 0; g < grid.length; g++) if (beyondKv(pods[i], grid[g])) curve[g * n + i] = MAX_PREDICTION_MS;
    // The service's TTFT is measured from arrival, so it already holds the wait behind the pod's queue as
    // its features told it (our picks then included); picks since add what has grown on the pod since.
    // Local prefills (a `both` pod prefilling for itself) are left out as the profile leaves them out:
    // they are the pod's decode queue (decodeQueueMs), where the kernel adds them between refreshes.
    if (quantity === "prefill-ttft") {
      const grown = pods[i].prefillMsInFlight - pods[i].localPrefillMsInFlight - (entry.prefillMsInFlight - entry.localPrefillMsInFlight);
      out.prefillQueueMs[i] = Math.max(0, grown);
    }
  }
}

/**
 * Where each point of a fine grid falls on a coarse one, as the kernel places a request: "exact" on the
 * same grid, null when `fine` does not hold every point of `coarse`.
 */
type GridPlacement = { seg: number; frac: number }[] | "exact" | null;

function placeOn(coarse: Float64Array, fine: Float64Array): GridPlacement {
  let matched = 0;
  for (let g = 0; g < fine.length && matched < coarse.length; g++) if (fine[g] === coarse[matched]) matched++;
  if (coarse.length === 0 || matched < coarse.length) return null;
  return Array.from(fine, (x) => gridPosition(coarse, x));
}

/**
 * Why these options can never give a fresh answer, or null: a call allowed to run as long as the
 * freshness limit (or longer) brings values that are stale on arrival, so the pods silently keep the
 * profile. The configuration's names are used, since the options come from `predictors`.
 */
export function remoteTimingProblem(options: Pick<RemotePredictorOptions, "timeoutMs" | "refreshMs" | "maxAgeMs">): string | null {
  const maxAgeMs = maxAgeOf(options);
  if (options.timeoutMs < maxAgeMs) return null;
  const limit =
    options.maxAgeMs !== undefined
      ? `the freshness limit of ${maxAgeMs} ms`
      : `the freshness limit of ${maxAgeMs} ms (${FRESH_REFRESHES} x predictors.refreshMs ${options.refreshMs ?? DEFAULTS.predictors.refreshMs})`;
  return `predictors.remote.timeoutMs (${options.timeoutMs}) must be below ${limit}: an answer later than that is never used`;
}

/** How long remote values stay fresh under these options. */
export function maxAgeOf(options: Pick<RemotePredictorOptions, "refreshMs" | "maxAgeMs">): number {
  return options.maxAgeMs ?? FRESH_REFRESHES * (options.refreshMs ?? DEFAULTS.predictors.refreshMs);
}

export interface RemotePredictorOptions {
  /** Each prediction call is abandoned after this long (real time: it bounds network I/O). */
  timeoutMs: number;
  /** Training entries kept per quantity while the training server is slow or down. */
  trainingBufferSize: number;
  trainingFlushMs: number;
  /** Each training upload is abandoned, its entries dropped, after this long. Default TRAINING_UPLOAD_TIMEOUT_MS. */
  trainingUploadTimeoutMs?: number;
  /** The engine's refresh period; remote values stay fresh for FRESH_REFRESHES of them. Default: the config's. */
  refreshMs?: number;
  /** Overrides the freshness limit directly. */
  maxAgeMs?: number;
}

export interface RemotePredictorInit {
  /** The quantities this predictor serves (those configured `remote`) and their servers. */
  endpoints: RemoteEndpointsByQuantity;
  fallback: ProfilePredictor;
  options: RemotePredictorOptions;
  clock: Clock;
  registry: Registry;
  logger: Logger;
  /**
   * Who judges whether an answer came in time: this predictor (default), or its caller, when the values
   * travel on to another thread whose clock decides. Then a call that answers is not counted here; the
   * caller learns each refresh's answered calls from `latestOf` and counts them itself.
   */
  judge?: "here" | "caller";
}

export interface RemoteValues {
  /** One value per grid point. */
  values: Float64Array;
  grid: Float64Array;
  /** Clock time the refresh that produced them started (the age of the pod state behind them). */
  atMs: number;
  refresh: number;
  /** The pod's in-flight prefill work (ms) when that refresh started, which the values count through its features. */
  prefillMsInFlight: number;
  /** The part of it that was local prefills (PodFeatures.localPrefillMsInFlight). */
  localPrefillMsInFlight: number;
}

interface QuantityState {
  quantity: Quantity;
  /** Calls of each refresh that answered, while the caller judges them (see RemotePredictorInit.judge). */
  answered: Map<number, number>;
  trainingUrl: string;
  predictionUrls: readonly string[];
  nextUrl: number;
  latest: Map<string, RemoteValues>;
  training: BoundedQueue<TrainingEntry>;
  uploading: Promise<void> | null;
}

/** One prediction call: its pods and their rows, already serialised (JSON.stringify of objects costs more). */
interface CallBatch {
  addresses: string[];
  /** Each pod's in-flight prefill work when the refresh started, and the local part of it. */
  prefillMsInFlight: number[];
  localPrefillMsInFlight: number[];
  rows: string[];
}

/** What a call came to: a value, or why not (`cause` tells log lines apart, e.g. http_500 from http_422). */
type Outcome<T> = { ok: true; value: T } | { ok: false; reason: FallbackReason; cause: string; detail: string };

export class RemotePredictor implements Predictor {
  readonly kind = "remote" as const;
  private readonly states = new Map<Quantity, QuantityState>();
  private readonly fallback: ProfilePredictor;
  private readonly clock: Clock;
  private readonly metrics: RemoteMetrics;
  private readonly once: OncePerCause;
  private readonly timeoutMs: number;
  private readonly trainingFlushMs: number;
  private readonly trainingUploadTimeoutMs: number;
  readonly maxAgeMs: number;
  private readonly inflight = new Set<AbortController>();
  private readonly stopFlush: Cancel;
  private readonly judgeHere: boolean;
  private refreshes = 0;
  private closed = false;

  /** Throws ConfigError when the options can never give a fresh answer (remoteTimingProblem). */
  constructor(init: RemotePredictorInit) {
    const { options } = init;
    const timing = remoteTimingProblem(options);
    if (timing !== null) throw new ConfigError([timing]);
    this.fallback = init.fallback;
    this.clock = init.clock;
    this.metrics = remoteMetrics(init.registry);
    this.once = new OncePerCause(init.logger);
    this.timeoutMs = options.timeoutMs;
    this.trainingFlushMs = options.trainingFlushMs;
    this.trainingUploadTimeoutMs = options.trainingUploadTimeoutMs ?? TRAINING_UPLOAD_TIMEOUT_MS;
    this.maxAgeMs = maxAgeOf(options);
    this.judgeHere = (init.judge ?? "here") === "here";
    for (const q of QUANTITIES) {
      const ep = init.endpoints[q];
      if (ep === undefined) continue;
      if (ep.predictionUrls.length === 0) throw new RangeError(`remote ${q} predictor needs at least one prediction URL`);
      this.states.set(q, {
        quantity: q,
        trainingUrl: normalise(ep.trainingUrl),
        predictionUrls: ep.predictionUrls.map(normalise),
        nextUrl: 0,
        answered: new Map(),
        latest: new Map(),
        training: new BoundedQueue(options.trainingBufferSize),
        uploading: null,
      });
      // Zero series from the start, so a dashboard can tell "no errors" from "not running".
      for (const status of ["success", "error"]) this.metrics.calls.inc({ predictor: q, status }, 0);
    }
    this.stopFlush = every(this.clock, this.trainingFlushMs, () => void this.flushTraining());
  }

  get quantities(): Quantity[] {
    return [...this.states.keys()];
  }

  /** Profile values first (marginals, queues, local prefill), then the fresh remote curves over them. */
  fill(quantity: Quantity, pods: readonly PodFeatures[], out: PoolPredictions): void {
    this.fallback.fill(quantity, pods, out);
    overlayRemote(quantity, pods, out, this.states.get(quantity)?.latest, this.clock.nowMs(), this.maxAgeMs);
  }

  /**
   * The values a refresh stored, per quantity, and how many of its calls answered (counted only while
   * the caller judges them; forgotten once taken). For a predictor thread to hand to the main thread.
   */
  latestOf(refresh: number): { quantity: Quantity; addresses: string[]; values: Float64Array; points: number; answered: number }[] {
    const out: { quantity: Quantity; addresses: string[]; values: Float64Array; points: number; answered: number }[] = [];
    for (const state of this.states.values()) {
      const fresh = [...state.latest].filter(([, v]) => v.refresh === refresh);
      const points = fresh[0]?.[1].values.length ?? 0;
      const values = new Float64Array(fresh.length * points);
      fresh.forEach(([, v], k) => values.set(v.values, k * points));
      const answered = state.answered.get(refresh) ?? 0;
      state.answered.delete(refresh);
      out.push({ quantity: state.quantity, addresses: fresh.map(([a]) => a), values, points, answered });
    }
    return out;
  }

  get refreshCount(): number {
    return this.refreshes;
  }

  /** How many pods have fresh remote values for `quantity` on `grid` (for state pages and tests). */
  freshPods(quantity: Quantity, grid: Float64Array): number {
    const state = this.states.get(quantity);
    if (state === undefined) return 0;
    const now = this.clock.nowMs();
    let fresh = 0;
    for (const entry of state.latest.values()) if (now - entry.atMs <= this.maxAgeMs && sameGrid(entry.grid, grid)) fresh++;
    return fresh;
  }

  async refresh(pods: readonly PodFeatures[], gridTokens: Float64Array): Promise<void> {
    if (this.closed) return;
    const refresh = ++this.refreshes;
    const startedMs = this.clock.nowMs();
    const grid = Float64Array.from(gridTokens);
    await Promise.all([...this.states.values()].map((state) => this.refreshQuantity(state, pods, grid, refresh, startedMs)));
  }

  private async refreshQuantity(
    state: QuantityState,
    pods: readonly PodFeatures[],
    grid: Float64Array,
    refresh: number,
    startedMs: number,
  ): Promise<void> {
    const q = state.quantity;
    try {
      for (const [address, entry] of state.latest) if (startedMs - entry.atMs > this.maxAgeMs) state.latest.delete(address);
      const g = grid.length;
      const tokens = Array.from(grid, count);
      if (g === 0 || tokens.some((t) => t === null)) {
        this.once.fail(`remote ${q} grid`, "invalid", `remote ${q} predictor: the ISL grid holds non-counts; nothing sent`, {
          predictor: q,
          grid: [...grid],
        });
        return;
      }
      // Calls split at pod boundaries, so a failed call never leaves a pod with half a curve.
      const podsPerCall = Math.max(1, Math.floor(MAX_ROWS_PER_CALL / g));
      const batches: CallBatch[] = [];
      let batch: CallBatch = { addresses: [], prefillMsInFlight: [], localPrefillMsInFlight: [], rows: [] };
      let invalid = 0;
      let firstProblem = "";
      for (const pod of pods) {
        if (!servesRole(q, pod.role)) continue;
        const base = featureRow(q, pod, grid[0]);
        if (typeof base === "string") {
          invalid += g;
          if (firstProblem === "") firstProblem = `${pod.address}: ${base}`;
          continue;
        }
        if (batch.addresses.length === podsPerCall) {
          batches.push(batch);
          batch = { addresses: [], prefillMsInFlight: [], localPrefillMsInFlight: [], rows: [] };
        }
        batch.addresses.push(pod.address);
        batch.prefillMsInFlight.push(pod.prefillMsInFlight);
        batch.localPrefillMsInFlight.push(pod.localPrefillMsInFlight);
        // Field order does not matter to the service: the grid point goes last, after the pod's features.
        const { input_token_length: _, ...rest } = base;
        const head = `${JSON.stringify(rest).slice(0, -1)},"input_token_length":`;
        for (let k = 0; k < g; k++) batch.rows.push(`${head}${tokens[k]!}}`);
      }
      if (batch.addresses.length > 0) batches.push(batch);
      if (invalid > 0) {
        this.metrics.invalidRows.inc({ predictor: q }, invalid);
        this.once.fail(`remote ${q} rows`, "invalid", `remote ${q} predictor: pods with invalid features keep the profile`, {
          predictor: q,
          example: firstProblem,
        });
      } else this.once.clear(`remote ${q} rows`, `remote ${q} predictor: every pod's features are valid again`);
      await Promise.all(batches.map((b) => this.predictCall(state, b, grid, refresh, startedMs)));
    } catch (err) {
      // Nothing above should throw; if it does, the pods keep the profile and the refresh still settles.
      this.once.fail(`remote ${q}`, "internal", `remote ${q} predictor: refresh failed`, { error: String(err) });
    }
  }

  private async predictCall(state: QuantityState, batch: CallBatch, grid: Float64Array, refresh: number, startedMs: number): Promise<void> {
    const q = state.quantity;
    const url = state.predictionUrls[state.nextUrl++ % state.predictionUrls.length];
    const outcome = await this.post<Float64Array>(
      `${url}/predict/bulk/strict`,
      `{"requests":[${batch.rows.join(",")}]}`,
      this.timeoutMs,
      batch.rows.length * MAX_RESPONSE_BYTES_PER_ROW + 65_536,
      (status, text) => {
        if (status === 503 && /not ready/i.test(detailOf(text))) {
          return { ok: false, reason: "not_ready", cause: "not_ready", detail: detailOf(text) };
        }
        if (status < 200 || status > 299) {
          return { ok: false, reason: "http_error", cause: `http_${status}`, detail: `HTTP ${status}: ${detailOf(text)}` };
        }
        const parsed = parsePredictions(text, batch.rows.length, ANSWER[q].field, ANSWER[q].maxMs);
        return typeof parsed === "string"
          ? { ok: false, reason: "bad_response", cause: "bad_response", detail: parsed }
          : { ok: true, value: parsed };
      },
    );
    if (outcome === null) return;
    const subject = `remote ${q} ${url}`;
    if (!outcome.ok) {
      this.metrics.calls.inc({ predictor: q, status: "error" });
      this.metrics.fallbacks.inc({ predictor: q, reason: outcome.reason });
      const message =
        outcome.reason === "not_ready"
          ? `remote ${q} predictor has not trained yet; its pods use the profile until it has`
          : `remote ${q} predictor call failed (${outcome.reason}); its pods use the profile`;
      this.once.fail(subject, outcome.cause, message, { predictor: q, url, reason: outcome.reason, detail: outcome.detail });
      return;
    }
    if (this.judgeHere) {
      const ageMs = this.clock.nowMs() - startedMs;
      if (ageMs > this.maxAgeMs) {
        // Counted as the failure it is for the pods, like a timeout: the service answered, too late to use.
        this.metrics.calls.inc({ predictor: q, status: "error" });
        this.metrics.fallbacks.inc({ predictor: q, reason: "stale" });
        this.once.fail(subject, "stale", `remote ${q} predictor answered after the values' freshness limit; its pods use the profile`, {
          predictor: q,
          url,
          reason: "stale",
          detail: `answer ${Math.round(ageMs)} ms after the refresh began, limit ${this.maxAgeMs} ms`,
        });
        return;
      }
      this.metrics.calls.inc({ predictor: q, status: "success" });
    } else state.answered.set(refresh, (state.answered.get(refresh) ?? 0) + 1);
    this.once.clear(subject, `remote ${q} predictor answers again`, { predictor: q, url });
    const g = grid.length;
    batch.addresses.forEach((address, p) => {
      const current = state.latest.get(address);
      // A slower, older refresh must not overwrite what a newer one stored.
      if (current !== undefined && current.refresh > refresh) return;
      state.latest.set(address, {
        values: outcome.value.subarray(p * g, (p + 1) * g),
        grid,
        atMs: startedMs,
        refresh,
        prefillMsInFlight: batch.prefillMsInFlight[p],
        localPrefillMsInFlight: batch.localPrefillMsInFlight[p],
      });
    });
  }

  /**
   * POSTs JSON and hands status and body to `judge`; null when the call was aborted by close(). The body
   * is read with a byte limit so a hostile or broken server cannot make us buffer without bound.
   */
  private async post<T>(
    url: string,
    /** A value to serialise, or JSON already serialised. */
    payload: unknown,
    timeoutMs: number,
    maxResponseBytes: number,
    judge: (status: number, text: string) => Outcome<T>,
  ): Promise<Outcome<T> | null> {
    const controller = new AbortController();
    const timeout = AbortSignal.timeout(timeoutMs);
    this.inflight.add(controller);
    try {
      const body = typeof payload === "string" ? payload : JSON.stringify(payload);
      const res = await postJson(url, body, AbortSignal.any([controller.signal, timeout]), maxResponseBytes);
      if (res.text === null) {
        return { ok: false, reason: "bad_response", cause: "bad_response", detail: `response over ${maxResponseBytes} bytes` };
      }
      return judge(res.status, res.text);
    } catch (err) {
      if (this.closed) return null;
      if (timeout.aborted) return { ok: false, reason: "timeout", cause: "timeout", detail: `no answer within ${timeoutMs} ms` };
      const code = (err as { code?: string }).code;
      return { ok: false, reason: "connection", cause: "connection", detail: code ?? (err as Error).message ?? String(err) };
    } finally {
      this.inflight.delete(controller);
    }
  }

  // ---- training ----

  /**
   * Queues one observation for the quantity's training server. `inputTokens` is what the kernel looks
   * the quantity up by (uncached prompt tokens for prefill-ttft, the whole prompt otherwise); an actual
   * of 0 or absent means "not a sample for that model"; `timestampMs` is wall time (Date.now()). Returns
   * false when the quantity is not served here or the entry is invalid (counted).
   */
  addTrainingSample(
    quantity: Quantity,
    features: PodFeatures,
    inputTokens: number,
    actual: { ttftMs?: number; tpotMs?: number },
    timestampMs: number,
  ): boolean {
    const state = this.states.get(quantity);
    if (state === undefined || this.closed) return false;
    const row = featureRow(quantity, features, inputTokens);
    const ttftMs = actual.ttftMs ?? 0;
    const tpotMs = actual.tpotMs ?? 0;
    const valid =
      typeof row !== "string" &&
      Number.isFinite(ttftMs) &&
      ttftMs >= 0 &&
      Number.isFinite(tpotMs) &&
      tpotMs >= 0 &&
      ttftMs + tpotMs > 0 &&
      Number.isFinite(timestampMs) &&
      Math.abs(timestampMs) <= 8.64e15;
    if (!valid) {
      this.metrics.invalidRows.inc({ predictor: quantity });
      return false;
    }
    const dropped = state.training.push({
      ...row,
      actual_ttft_ms: ttftMs,
      actual_tpot_ms: tpotMs,
      timestamp: new Date(timestampMs).toISOString(),
    });
    if (dropped > 0) this.metrics.trainingDropped.inc({ predictor: quantity, reason: "buffer_full" }, dropped);
    return true;
  }

  /** Entries waiting for upload, per quantity. */
  trainingBacklog(quantity: Quantity): number {
    return this.states.get(quantity)?.training.size ?? 0;
  }

  /**
   * Uploads what is buffered (the Clock calls this every trainingFlushMs). Resolves when every upload
   * started here or already running has finished; never rejects.
   */
  flushTraining(): Promise<void> {
    const uploads: Promise<void>[] = [];
    for (const state of this.states.values()) {
      if (state.uploading === null && state.training.size > 0 && !this.closed) {
        state.uploading = this.upload(state).finally(() => (state.uploading = null));
      }
      if (state.uploading !== null) uploads.push(state.uploading);
    }
    return Promise.all(uploads).then(() => undefined);
  }

  private async upload(state: QuantityState): Promise<void> {
    const q = state.quantity;
    const url = `${state.trainingUrl}/add_training_data_bulk`;
    const subject = `remote ${q} training ${state.trainingUrl}`;
    // Only what was there when the flush began: a buffer fed faster than it drains still yields to the next flush.
    let calls = Math.ceil(state.training.size / MAX_ENTRIES_PER_UPLOAD);
    while (calls-- > 0 && !this.closed) {
      const entries = state.training.take(MAX_ENTRIES_PER_UPLOAD);
      if (entries.length === 0) return;
      const answered = { refused: false };
      const outcome = await this.post<null>(url, { entries }, this.trainingUploadTimeoutMs, 65_536, (status, text) => {
        if (status >= 200 && status <= 299) return { ok: true, value: null };
        answered.refused = cannotSucceedOnRetry(status);
        return { ok: false, reason: "http_error", cause: `http_${status}`, detail: `HTTP ${status}: ${detailOf(text)}` };
      });
      if (outcome === null) return;
      if (!outcome.ok && answered.refused) {
        // Sent again it would be refused again, and every flush would resend it while nothing behind it
        // went out: the batch goes, and the rest of the buffer carries on.
        this.metrics.trainingDropped.inc({ predictor: q, reason: "refused" }, entries.length);
        this.once.fail(`${subject} ${outcome.cause}`, outcome.cause, `remote ${q} training server refused an upload (${outcome.cause}); its entries were dropped`, {
          predictor: q,
          url: state.trainingUrl,
          detail: outcome.detail,
          dropped: entries.length,
        });
        continue;
      }
      if (!outcome.ok && outcome.reason === "timeout") {
        // The body went out and may have been taken: sent again, the server could train on it twice.
        this.metrics.trainingDropped.inc({ predictor: q, reason: "timeout" }, entries.length);
        this.once.fail(subject, outcome.cause, `remote ${q} training upload got no answer in time; its entries were dropped (the server may have them)`, {
          predictor: q,
          url: state.trainingUrl,
          detail: outcome.detail,
          dropped: entries.length,
          backlog: state.training.size,
        });
        return;
      }
      if (!outcome.ok) {
        const dropped = state.training.putBack(entries);
        if (dropped > 0) this.metrics.trainingDropped.inc({ predictor: q, reason: "buffer_full" }, dropped);
        this.once.fail(subject, outcome.cause, `remote ${q} training upload failed (${outcome.reason}); entries kept for the next flush`, {
          predictor: q,
          url: state.trainingUrl,
          detail: outcome.detail,
          backlog: state.training.size,
        });
        return;
      }
      this.metrics.trainingSent.inc({ predictor: q }, entries.length);
      this.once.clear(subject, `remote ${q} training server accepts uploads again`, { predictor: q, url: state.trainingUrl });
    }
  }

  /** Stops the flush timer and aborts every call in flight; refresh and training become no-ops. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopFlush();
    for (const controller of this.inflight) controller.abort();
    this.inflight.clear();
  }
}

/**
 * Whether an upload's HTTP status says the same body would be refused again: a 4xx (422 for an entry
 * the server will not take, 413 for a body too large, …) other than 408 (timeout) and 429 (too many
 * requests), which say "later".
 */
function cannotSucceedOnRetry(status: number): boolean {
  return status >= 400 && status <= 499 && status !== 408 && status !== 429;
}

function sameGrid(a: Float64Array, b: Float64Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The `detail` of a FastAPI error body when there is one, else the start of the body. */
function detailOf(text: string): string {
  try {
    const body = JSON.parse(text) as unknown;
    if (body !== null && typeof body === "object" && "detail" in body) {
      const detail = (body as { detail: unknown }).detail;
      return (typeof detail === "string" ? detail : JSON.stringify(detail)).slice(0, 300);
    }
  } catch {
    // Not JSON: the raw start says more than nothing.
  }
  return text.slice(0, 300);
}

/**
 * The values of `field` from a `{"predictions":[…]}` answer for `expected` rows, in row order, or what
 * is wrong with it. The answer is used whole or not at all: a wrong count, a missing field or a value
 * that is not finite, negative or above `maxMs` rejects every value in it.
 */
export function parsePredictions(text: string, expected: number, field: "ttft_ms" | "tpot_ms", maxMs: number): Float64Array | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `not JSON: ${text.slice(0, 100)}`;
  }
  if (body === null || typeof body !== "object" || !Array.isArray((body as { predictions?: unknown }).predictions)) {
    return "no predictions array";
  }
  const predictions = (body as { predictions: unknown[] }).predictions;
  if (predictions.length !== expected) return `${predictions.length} predictions for ${expected} rows`;
  const values = new Float64Array(expected);
  for (let i = 0; i < expected; i++) {
    const p = predictions[i];
    const v = p !== null && typeof p === "object" ? (p as Record<string, unknown>)[field] : undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > maxMs) {
      return `prediction ${i}: ${field} ${JSON.stringify(v) ?? "missing"} is not a number in [0, ${maxMs}]`;
    }
    values[i] = v;
  }
  return values;
}

/**
 * One POST with node:http (far less main-thread work per call than fetch for bodies of hundreds of
 * KiB). The answer's text, or null once it exceeds maxBytes (the connection is then dropped).
 */
function postJson(url: string, body: string, signal: AbortSignal, maxBytes: number): Promise<{ status: number; text: string | null }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(
      target,
      { method: "POST", signal, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > maxBytes) {
            res.destroy();
            resolve({ status: res.statusCode ?? 0, text: null });
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
