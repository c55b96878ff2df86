// The remote predictor against real loopback servers (the stand-in of bench/): rows and values, call
// splitting, every failure falling back to the profile with the right counts and one log line per cause,
// recovery, freshness, the training buffer and its uploads, the environment checks, hostile bodies.

import fc from "fast-check";
import { Registry, Counter } from "prom-client";
import { afterEach, describe, expect, test } from "vitest";
import {
  LatencyPredictorStandIn,
  standInTpotMs,
  standInTtftMs,
  type PredictMode,
  type StandInRow,
} from "../bench/latency-predictor-service.js";
import { ManualClock, realClock } from "../src/clock.js";
import { BUILTIN_PROFILE } from "../src/config/schema.js";
import { ConfigError } from "../src/errors.js";
import { MemoryLogger } from "../src/log.js";
import type { PodRole } from "../src/pods/types.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { ProfilePredictor } from "../src/predictors/profile.js";
import {
  BoundedQueue,
  CALLS_METRIC,
  MAX_REMOTE_TTFT_MS,
  MAX_REMOTE_TPOT_MS,
  RemotePredictor,
  checkRemoteConfig,
  featureRow,
  remoteEndpointsFromEnv,
  remoteQuantities,
  type RemoteEndpointsByQuantity,
  type RemotePredictorOptions,
} from "../src/predictors/remote.js";
import type { ThreadedRemotePredictor as Threaded } from "../src/predictors/remote-threaded.js";
import { allocatePredictions, logGrid, type PodFeatures, type PoolPredictions, type Quantity } from "../src/predictors/types.js";

const shipped = LatencyProfile.shipped(BUILTIN_PROFILE);
const profile = new ProfilePredictor({ profiles: new Map([[BUILTIN_PROFILE, shipped]]), tpEfficiency: 0.85 });
const KV_CAPACITY = shipped.kvCapacityTokens(1, 0.9);
const GRID = logGrid(4, 16, 8192);

function pod(i: number, role: PodRole, over: Partial<PodFeatures> = {}): PodFeatures {
  return {
    address: `10.0.${i >> 8}.${i & 255}:8000`,
    role,
    tp: 1,
    profile: BUILTIN_PROFILE,
    waiting: i % 3,
    running: 2 + (i % 5),
    kvTokensUsed: 1000 * (i % 7),
    kvCapacityTokens: KV_CAPACITY,
    prefillRequestsInFlight: i % 2,
    prefillTokensInFlight: 500 * (i % 2),
    prefillMsInFlight: 40 * (i % 2),
    localPrefillMsInFlight: 0,
    decodeRequestsInFlight: i % 4,
    decodeTokensInFlight: 700 * (i % 4),
    meanIsl: 1000,
    meanOsl: 200,
    ...over,
  };
}

/** The row SPEC.md §4 and the file header describe, derived here independently of the client. */
function expectedRow(p: PodFeatures, tokens: number, podType: "prefill" | "decode"): StandInRow {
  return {
    kv_cache_percentage: Math.min(1, (p.kvTokensUsed + p.decodeTokensInFlight) / p.kvCapacityTokens),
    input_token_length: tokens,
    num_request_waiting: p.waiting + p.prefillRequestsInFlight,
    num_request_running: p.running + p.decodeRequestsInFlight,
    num_tokens_generated: 0,
    prefix_cache_score: 0,
    pod_type: podType,
    prefill_tokens_in_flight: p.prefillTokensInFlight,
    decode_tokens_in_flight: p.decodeTokensInFlight,
  };
}

async function counterValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);
}

const services: LatencyPredictorStandIn[] = [];
const predictors: RemotePredictor[] = [];

async function standIn(port?: number): Promise<LatencyPredictorStandIn> {
  const s = await LatencyPredictorStandIn.start({ keepRows: true, port });
  services.push(s);
  return s;
}

afterEach(async () => {
  for (const p of predictors.splice(0)) p.close();
  await Promise.all(services.splice(0).map((s) => s.close()));
});

interface Harness {
  predictor: RemotePredictor;
  clock: ManualClock;
  registry: Registry;
  logger: MemoryLogger;
}

function remote(endpoints: RemoteEndpointsByQuantity, options: Partial<RemotePredictorOptions> = {}, registry = new Registry()): Harness {
  const clock = new ManualClock();
  const logger = new MemoryLogger();
  const predictor = new RemotePredictor({
    endpoints,
    fallback: profile,
    options: { timeoutMs: 2000, trainingBufferSize: 10_000, trainingFlushMs: 1000, refreshMs: 1000, ...options },
    clock,
    registry,
    logger,
  });
  predictors.push(predictor);
  return { predictor, clock, registry, logger };
}

function on(url: string): { trainingUrl: string; predictionUrls: string[] } {
  return { trainingUrl: url, predictionUrls: [url] };
}

function filled(p: { fill: RemotePredictor["fill"] } | ProfilePredictor, quantity: Quantity, pods: PodFeatures[], grid = GRID): PoolPredictions {
  const out = allocatePredictions(pods.length, grid);
  p.fill(quantity, pods, out);
  return out;
}

const CURVE: Record<Quantity, "prefillMs" | "decodeWaitMs" | "tpotMs"> = {
  "prefill-ttft": "prefillMs",
  "decode-ttft": "decodeWaitMs",
  "decode-tpot": "tpotMs",
};

describe("rows and values", () => {
  test("one row per candidate pod and grid point with the service's features; the answers land in the right curves", async () => {
    const service = await standIn();
    const { predictor } = remote({ "prefill-ttft": on(service.url), "decode-ttft": on(service.url), "decode-tpot": on(service.url) });
    const pods = [pod(0, "prefill"), pod(1, "prefill"), pod(2, "decode"), pod(3, "decode"), pod(4, "both")];
    await predictor.refresh(pods, GRID);

    // Prefill rows for prefill and both pods, decode rows (twice: decode-ttft and decode-tpot) for decode and both.
    const sent = service.calls.flatMap((c) => c.body as StandInRow[]);
    const prefillRows = sent.filter((r) => r.pod_type === "prefill");
    const decodeRows = sent.filter((r) => r.pod_type === "decode");
    expect(prefillRows).toEqual([0, 1, 4].flatMap((i) => [...GRID].map((t) => expectedRow(pods[i], t, "prefill"))));
    expect(decodeRows).toHaveLength(2 * 3 * GRID.length);
    // Rows compare as sets of objects: the order of rows and of fields within a row is free.
    const canonical = (r: object) => JSON.stringify(Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1))));
    expect(new Set(decodeRows.map(canonical))).toEqual(
      new Set([2, 3, 4].flatMap((i) => [...GRID].map((t) => canonical(expectedRow(pods[i], t, "decode"))))),
    );

    const n = pods.length;
    const prefill = filled(predictor, "prefill-ttft", pods);
    const wait = filled(predictor, "decode-ttft", pods);
    const tpot = filled(predictor, "decode-tpot", pods);
    const reference = (q: Quantity) => filled(profile, q, pods);
    for (let i = 0; i < n; i++) {
      for (let g = 0; g < GRID.length; g++) {
        const at = g * n + i;
        if (pods[i].role !== "decode") {
          expect(prefill.prefillMs[at]).toBeCloseTo(standInTtftMs(expectedRow(pods[i], GRID[g], "prefill")), 9);
        } else expect(prefill.prefillMs[at]).toBe(reference("prefill-ttft").prefillMs[at]);
        if (pods[i].role !== "prefill") {
          expect(wait.decodeWaitMs[at]).toBeCloseTo(standInTtftMs(expectedRow(pods[i], GRID[g], "decode")), 9);
          expect(tpot.tpotMs[at]).toBeCloseTo(standInTpotMs(expectedRow(pods[i], GRID[g], "decode")), 9);
        } else {
          expect(wait.decodeWaitMs[at]).toBe(reference("decode-ttft").decodeWaitMs[at]);
          expect(tpot.tpotMs[at]).toBe(reference("decode-tpot").tpotMs[at]);
        }
      }
      // The remote TTFT includes the queue; local prefill and the marginals stay the profile's.
      expect(prefill.prefillQueueMs[i]).toBe(pods[i].role === "decode" ? reference("prefill-ttft").prefillQueueMs[i] : 0);
    }
    expect(prefill.localPrefillMs).toEqual(reference("prefill-ttft").localPrefillMs);
    expect(wait.waitPerRequestMs).toEqual(reference("decode-ttft").waitPerRequestMs);
    expect(tpot.tpotPerRequestMs).toEqual(reference("decode-tpot").tpotPerRequestMs);
    expect(tpot.tpotPerTokenMs).toEqual(reference("decode-tpot").tpotPerTokenMs);
  });

  test("a quantity not served is the profile's alone", async () => {
    const service = await standIn();
    const { predictor } = remote({ "decode-tpot": on(service.url) });
    const pods = [pod(0, "both"), pod(1, "decode")];
    await predictor.refresh(pods, GRID);
    expect(service.calls.every((c) => (c.body as StandInRow[]).every((r) => r.pod_type === "decode"))).toBe(true);
    expect(filled(predictor, "prefill-ttft", pods)).toEqual(filled(profile, "prefill-ttft", pods));
    expect(filled(predictor, "decode-ttft", pods)).toEqual(filled(profile, "decode-ttft", pods));
  });

  test("KV percentage is clamped to 1 and counts are rounded; non-counts are refused with a reason", () => {
    const full = featureRow("decode-ttft", pod(0, "decode", { kvTokensUsed: KV_CAPACITY, decodeTokensInFlight: 5000, waiting: 2.4 }), 100);
    expect(full).toMatchObject({ kv_cache_percentage: 1, num_request_waiting: 2, decode_tokens_in_flight: 5000 });
    expect(featureRow("decode-ttft", pod(0, "decode", { waiting: NaN }), 100)).toMatch(/not counts/);
    expect(featureRow("decode-ttft", pod(0, "decode", { running: -1 }), 100)).toMatch(/not counts/);
    expect(featureRow("decode-ttft", pod(0, "decode", { kvCapacityTokens: 0 }), 100)).toMatch(/no percentage/);
    expect(featureRow("prefill-ttft", pod(0, "prefill", { prefillTokensInFlight: Infinity }), 100)).toMatch(/tokens in flight/);
    expect(featureRow("prefill-ttft", pod(0, "prefill"), -5)).toMatch(/input tokens/);
  });

  test("a pod with invalid features is left out of the call (no 422), counted, logged once, and keeps the profile", async () => {
    const service = await standIn();
    const { predictor, registry, logger } = remote({ "prefill-ttft": on(service.url) });
    const pods = [pod(0, "prefill"), pod(1, "prefill", { waiting: NaN }), pod(2, "prefill")];
    await predictor.refresh(pods, GRID);
    await predictor.refresh(pods, GRID);
    expect(service.calls.map((c) => [c.status, c.rows])).toEqual([
      [200, 2 * GRID.length],
      [200, 2 * GRID.length],
    ]);
    expect(await counterValue(registry, "headroom_predictor_invalid_rows_total", { predictor: "prefill-ttft" })).toBe(2 * GRID.length);
    expect(logger.lines.filter((l) => l.fields?.cause === "invalid")).toHaveLength(1);
    const out = filled(predictor, "prefill-ttft", pods);
    const ref = filled(profile, "prefill-ttft", pods);
    for (let g = 0; g < GRID.length; g++) expect(out.prefillMs[g * 3 + 1]).toBe(ref.prefillMs[g * 3 + 1]);
    expect(out.prefillMs[0]).toBeCloseTo(standInTtftMs(expectedRow(pods[0], GRID[0], "prefill")), 9);
  });
});

describe("calls", () => {
  test("1,024 pods x 12 grid points: two calls of whole pods, at most 10,000 rows each, one per prediction URL", async () => {
    const a = await standIn();
    const b = await standIn();
    const { predictor, registry } = remote(
      { "decode-tpot": { trainingUrl: a.url, predictionUrls: [a.url, `${b.url}/`] } },
      { timeoutMs: 20_000, refreshMs: 10_000 },
    );
    const grid = logGrid(12, 16, 16384);
    const pods = Array.from({ length: 1024 }, (_, i) => pod(i, "both"));
    await predictor.refresh(pods, grid);
    expect(a.calls.map((c) => [c.status, c.rows])).toEqual([[200, 833 * 12]]);
    expect(b.calls.map((c) => [c.status, c.rows])).toEqual([[200, 191 * 12]]);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(2);
    expect(predictor.freshPods("decode-tpot", grid)).toBe(1024);
    const out = filled(predictor, "decode-tpot", pods, grid);
    for (const i of [0, 832, 833, 1023]) {
      for (let g = 0; g < 12; g++) expect(out.tpotMs[g * 1024 + i]).toBeCloseTo(standInTpotMs(expectedRow(pods[i], grid[g], "decode")), 9);
    }
    // Round-robin carries on across refreshes.
    await predictor.refresh(pods.slice(0, 10), grid);
    expect(a.calls).toHaveLength(2);
  });

  test("fresh means at most maxAgeMs old and on the same grid; a failed call leaves earlier fresh values in use", async () => {
    const service = await standIn();
    const { predictor, clock } = remote({ "decode-ttft": on(service.url) }, { refreshMs: 100, timeoutMs: 250 });
    expect(predictor.maxAgeMs).toBe(300);
    const pods = [pod(0, "decode")];
    await predictor.refresh(pods, GRID);
    const remoteValue = standInTtftMs(expectedRow(pods[0], GRID[0], "decode"));
    const profileValue = filled(profile, "decode-ttft", pods).decodeWaitMs[0];
    expect(filled(predictor, "decode-ttft", pods).decodeWaitMs[0]).toBeCloseTo(remoteValue, 9);
    expect(filled(predictor, "decode-ttft", pods, logGrid(4, 16, 4096)).decodeWaitMs[0]).toBe(filled(profile, "decode-ttft", pods, logGrid(4, 16, 4096)).decodeWaitMs[0]);

    service.behaviour.predict = "error";
    clock.advance(200);
    await predictor.refresh(pods, GRID);
    expect(filled(predictor, "decode-ttft", pods).decodeWaitMs[0]).toBeCloseTo(remoteValue, 9);
    clock.advance(101);
    expect(filled(predictor, "decode-ttft", pods).decodeWaitMs[0]).toBe(profileValue);
  });
});

describe("the prefill queue since the refresh", () => {
  test("a both pod's local prefills picked since the refresh are its decode queue, not its prefill queue, in and out of the thread (found by review)", async () => {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const endpoints = { "prefill-ttft": on(service.url), "decode-ttft": on(service.url) };
    const options = { timeoutMs: 2000, trainingBufferSize: 10, trainingFlushMs: 1000, refreshMs: 1000 };
    // At the refresh: 60 ms of prefill work ahead on the pod, 20 of it local prefills.
    const pods = [pod(0, "both", { prefillMsInFlight: 60, localPrefillMsInFlight: 20 })];
    const direct = remote(endpoints, options);
    await direct.predictor.refresh(pods, GRID);
    const threaded = new ThreadedRemotePredictor({ endpoints, fallback: profile, options, clock: direct.clock, registry: new Registry(), logger: new MemoryLogger() });
    try {
      await threaded.refresh(pods, GRID);
      // Since: a pick prefilled here for another pod (25 ms) and one prefilled here locally (30 ms).
      const later = [{ ...pods[0], prefillMsInFlight: 60 + 25 + 30, localPrefillMsInFlight: 20 + 30 }];
      for (const p of [direct.predictor, threaded]) {
        const out = allocatePredictions(1, GRID);
        p.fill("prefill-ttft", later, out);
        p.fill("decode-ttft", later, out);
        expect(out.prefillMs[0]).toBeCloseTo(standInTtftMs(expectedRow(pods[0], GRID[0], "prefill")), 9);
        expect(out.prefillQueueMs[0]).toBe(25);
        // The local prefills, all of them, as the profile counts them: once, in the decode queue.
        expect(out.decodeQueueMs[0]).toBe(filled(profile, "decode-ttft", later).decodeQueueMs[0]);
        expect(out.decodeQueueMs[0]).toBe(50);
      }
      // Local work finishing while remote work grows does not hide the growth; work done is no queue.
      const drained = [{ ...pods[0], prefillMsInFlight: 40 + 10, localPrefillMsInFlight: 0 }];
      expect(filled(direct.predictor, "prefill-ttft", drained).prefillQueueMs[0]).toBe(10);
      const done = [{ ...pods[0], prefillMsInFlight: 0, localPrefillMsInFlight: 0 }];
      expect(filled(threaded, "prefill-ttft", done).prefillQueueMs[0]).toBe(0);
    } finally {
      threaded.close();
    }
  });
});

describe("answers too late to be fresh", () => {
  test("a timeout that lets calls outlive the values' freshness is refused at construction, naming the field and the limit", async () => {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const endpoints = { "decode-tpot": on("http://127.0.0.1:9") };
    const refusal = (options: Partial<RemotePredictorOptions>) => {
      try {
        remote(endpoints, options);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems.join("\n");
      }
      return null;
    };
    expect(refusal({ timeoutMs: 1000, refreshMs: 100 })).toBe(
      "predictors.remote.timeoutMs (1000) must be below the freshness limit of 300 ms (3 x predictors.refreshMs 100): an answer later than that is never used",
    );
    expect(refusal({ timeoutMs: 300, refreshMs: 100 })).toMatch(/^predictors\.remote\.timeoutMs \(300\) must be below/);
    expect(refusal({ timeoutMs: 299, refreshMs: 100 })).toBeNull();
    expect(refusal({ timeoutMs: 500, maxAgeMs: 400 })).toMatch(/below the freshness limit of 400 ms:/);
    // The threaded variant refuses the same before it starts a thread (its wait for the thread follows the limit).
    const options = { timeoutMs: 1000, refreshMs: 100, trainingBufferSize: 10, trainingFlushMs: 50 };
    expect(() => new ThreadedRemotePredictor({ endpoints, fallback: profile, options, clock: new ManualClock(), registry: new Registry(), logger: new MemoryLogger() })).toThrow(
      /predictors\.remote\.timeoutMs \(1000\) must be below the freshness limit of 300 ms/,
    );
  });

  test("an answer that lands after the freshness limit is a stale fallback: counted, logged once, the pods keep the profile", async () => {
    const service = await standIn();
    service.behaviour.predictDelayMs = 100;
    const { predictor, registry, logger, clock } = remote({ "decode-tpot": on(service.url) }, { refreshMs: 100, timeoutMs: 250 });
    const pods = [pod(0, "decode"), pod(1, "both")];
    for (let round = 0; round < 2; round++) {
      const refreshed = predictor.refresh(pods, GRID);
      // The engine's time moves on while the call is out (a busy event loop, JSON work): the answer
      // arrives 301 ms after the pod state it was asked about.
      clock.advance(301);
      await refreshed;
      expect(filled(predictor, "decode-tpot", pods)).toEqual(filled(profile, "decode-tpot", pods));
    }
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(0);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "error" })).toBe(2);
    expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { predictor: "decode-tpot", reason: "stale" })).toBe(2);
    const warnings = logger.lines.filter((l) => l.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0].fields).toMatchObject({ predictor: "decode-tpot", reason: "stale", cause: "stale" });

    // In time again: used, counted a success, the recovery logged.
    await predictor.refresh(pods, GRID);
    expect(filled(predictor, "decode-tpot", pods).tpotMs[0]).toBeCloseTo(standInTpotMs(expectedRow(pods[0], GRID[0], "decode")), 9);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(1);
    expect(logger.lines.filter((l) => l.level === "info" && l.fields?.previousCause === "stale")).toHaveLength(1);
  });
});

describe("failures fall back to the profile", () => {
  const cases: { name: string; mode?: PredictMode; delayMs?: number; refused?: boolean; reason: string }[] = [
    { name: "slow beyond the timeout", delayMs: 1500, reason: "timeout" },
    { name: "500", mode: "error", reason: "http_error" },
    { name: "503 Models not ready", mode: "not-ready", reason: "not_ready" },
    { name: "422", mode: "reject", reason: "http_error" },
    { name: "malformed JSON", mode: "malformed", reason: "bad_response" },
    { name: "wrong prediction count", mode: "wrong-count", reason: "bad_response" },
    { name: "connection refused", refused: true, reason: "connection" },
  ];

  for (const c of cases) {
    test(`${c.name}: ${c.reason}, counted, logged once, then recovery`, async () => {
      let service = await standIn();
      const port = Number(new URL(service.url).port);
      if (c.refused) await service.close();
      else {
        if (c.mode !== undefined) service.behaviour.predict = c.mode;
        if (c.delayMs !== undefined) service.behaviour.predictDelayMs = c.delayMs;
      }
      const { predictor, registry, logger, clock } = remote({ "prefill-ttft": on(service.url) }, { timeoutMs: 200 });
      const pods = [pod(0, "prefill"), pod(1, "both"), pod(2, "decode")];
      const reference = filled(profile, "prefill-ttft", pods);

      for (let round = 0; round < 3; round++) {
        const started = performance.now();
        await predictor.refresh(pods, GRID);
        expect(performance.now() - started).toBeLessThan(1000);
        expect(filled(predictor, "prefill-ttft", pods)).toEqual(reference);
        clock.advance(100);
      }
      expect(await counterValue(registry, CALLS_METRIC, { predictor: "prefill-ttft", status: "error" })).toBe(3);
      expect(await counterValue(registry, CALLS_METRIC, { predictor: "prefill-ttft", status: "success" })).toBe(0);
      expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { predictor: "prefill-ttft", reason: c.reason })).toBe(3);
      expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { predictor: "prefill-ttft" })).toBe(3);
      const failures = logger.lines.filter((l) => l.level === "warn");
      expect(failures).toHaveLength(1);
      expect(failures[0].fields).toMatchObject({ predictor: "prefill-ttft", reason: c.reason });

      if (c.refused) service = await standIn(port);
      else service.reset();
      await predictor.refresh(pods, GRID);
      const out = filled(predictor, "prefill-ttft", pods);
      expect(out.prefillMs[0]).toBeCloseTo(standInTtftMs(expectedRow(pods[0], GRID[0], "prefill")), 9);
      expect(out.prefillQueueMs[0]).toBe(0);
      expect(await counterValue(registry, CALLS_METRIC, { predictor: "prefill-ttft", status: "success" })).toBe(1);
      expect(logger.lines.filter((l) => l.level === "info" && l.fields?.previousCause !== undefined)).toHaveLength(1);
    });
  }

  test("different causes are logged once each", async () => {
    const service = await standIn();
    const { predictor, logger } = remote({ "decode-ttft": on(service.url) });
    const pods = [pod(0, "decode")];
    for (const mode of ["error", "error", "not-ready", "not-ready", "wrong-count"] as const) {
      service.behaviour.predict = mode;
      await predictor.refresh(pods, GRID);
    }
    expect(logger.lines.filter((l) => l.level === "warn").map((l) => l.fields?.cause)).toEqual(["http_500", "not_ready", "bad_response"]);
  });

  test("values beyond the caps, negative or missing reject the whole answer", async () => {
    const service = await standIn();
    const { predictor, registry } = remote({ "decode-tpot": on(service.url) });
    const pods = [pod(0, "decode"), pod(1, "decode")];
    const answers = [
      [1, MAX_REMOTE_TPOT_MS + 1],
      [1, -0.5],
      [1, null],
    ];
    for (const values of answers) {
      service.behaviour.respond = (rows) => ({
        status: 200,
        body: JSON.stringify({ predictions: Array.from({ length: rows }, (_, i) => ({ ttft_ms: 1, tpot_ms: values[i % 2] })) }),
      });
      await predictor.refresh(pods, GRID);
      expect(filled(predictor, "decode-tpot", pods)).toEqual(filled(profile, "decode-tpot", pods));
    }
    expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { reason: "bad_response" })).toBe(3);
    expect(MAX_REMOTE_TTFT_MS).toBeGreaterThan(MAX_REMOTE_TPOT_MS);
  });

  test("close() aborts a call in flight and stops the flush: refresh settles at once, nothing is counted, the rest are no-ops", async () => {
    const service = await standIn();
    service.behaviour.predictDelayMs = 5000;
    const { predictor, registry, clock } = remote({ "decode-tpot": on(service.url) }, { timeoutMs: 10_000, refreshMs: 10_000 });
    expect(predictor.addTrainingSample("decode-tpot", pod(0, "decode"), 100, { tpotMs: 9 }, 0)).toBe(true);
    const started = performance.now();
    const pending = predictor.refresh([pod(0, "decode")], GRID);
    await new Promise((r) => setTimeout(r, 50));
    predictor.close();
    await pending;
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "error" })).toBe(0);
    await predictor.refresh([pod(0, "decode")], GRID);
    expect(service.predictCalls).toBe(1);
    clock.advance(5000);
    await predictor.flushTraining();
    expect(service.trainingCalls).toBe(0);
    expect(predictor.addTrainingSample("decode-tpot", pod(0, "decode"), 100, { tpotMs: 9 }, 0)).toBe(false);
  });
});

describe("hostile bodies", () => {
  test("never throw and never put a non-finite or negative value into the predictions", async () => {
    const service = await standIn();
    const { predictor, clock } = remote({ "decode-ttft": on(service.url), "decode-tpot": on(service.url) }, { timeoutMs: 2000 });
    const pods = [pod(0, "decode"), pod(1, "both"), pod(2, "decode", { waiting: 50, kvTokensUsed: KV_CAPACITY })];
    const rawNumber = fc.oneof(
      fc.double().map((x) => (Number.isFinite(x) ? JSON.stringify(x) : String(x))),
      fc.constantFrom("1e999", "-1e999", "-0", "1e-400", "null", '"12"', "true", "[]", "{}", "9007199254740993"),
    );
    const prediction = fc.tuple(rawNumber, rawNumber).map(([t, p]) => `{"ttft_ms":${t},"tpot_ms":${p}}`);
    const structured = fc
      .tuple(fc.array(prediction, { minLength: 0, maxLength: 14 }), fc.boolean())
      .map(([items, wrapped]) => (wrapped ? `{"predictions":[${items.join(",")}]}` : `[${items.join(",")}]`));
    const body = fc.oneof(structured, fc.json(), fc.string(), fc.constantFrom("", "{", '{"predictions":null}', '{"predictions":{}}'));
    const status = fc.constantFrom(200, 200, 200, 201, 204, 400, 422, 500, 503);

    await fc.assert(
      fc.asyncProperty(body, status, async (text, code) => {
        service.behaviour.respond = () => ({ status: code, body: text });
        clock.advance(predictor.maxAgeMs + 1);
        await predictor.refresh(pods, GRID);
        for (const q of ["decode-ttft", "decode-tpot"] as const) {
          const out = filled(predictor, q, pods);
          for (const v of out[CURVE[q]]) {
            expect(Number.isFinite(v)).toBe(true);
            expect(v).toBeGreaterThanOrEqual(0);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("training", () => {
  const sample = (i: number) => pod(i, "decode");

  test("entries carry the row, both actuals (0 = not a sample for that model) and an ISO timestamp; at most 100 per upload", async () => {
    const service = await standIn();
    const { predictor, registry } = remote({ "decode-tpot": on(service.url) });
    const at = Date.UTC(2025, 0, 2, 3, 4, 5);
    for (let i = 0; i < 250; i++) expect(predictor.addTrainingSample("decode-tpot", sample(i), 1000 + i, { tpotMs: 20 + i }, at)).toBe(true);
    await predictor.flushTraining();
    expect(service.calls.map((c) => [c.path, c.rows, c.status])).toEqual([
      ["/add_training_data_bulk", 100, 202],
      ["/add_training_data_bulk", 100, 202],
      ["/add_training_data_bulk", 50, 202],
    ]);
    expect(service.trainingEntries[7]).toEqual({
      ...expectedRow(sample(7), 1007, "decode"),
      actual_ttft_ms: 0,
      actual_tpot_ms: 27,
      timestamp: "2025-01-02T03:04:05.000Z",
    });
    expect(await counterValue(registry, "headroom_predictor_training_sent_total", { predictor: "decode-tpot" })).toBe(250);
    expect(predictor.trainingBacklog("decode-tpot")).toBe(0);
  });

  test("the Clock flushes every trainingFlushMs", async () => {
    const service = await standIn();
    const { predictor, clock } = remote({ "prefill-ttft": on(service.url) }, { trainingFlushMs: 1000 });
    predictor.addTrainingSample("prefill-ttft", pod(0, "prefill"), 512, { ttftMs: 80 }, Date.now());
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 50));
    expect(service.trainingCalls).toBe(0);
    clock.advance(1);
    // The tick started the upload; flushTraining waits for it and starts nothing new (the buffer is empty).
    await predictor.flushTraining();
    expect(service.trainingCalls).toBe(1);
    predictor.addTrainingSample("prefill-ttft", pod(0, "prefill"), 512, { ttftMs: 80 }, Date.now());
    clock.advance(1000);
    await predictor.flushTraining();
    expect(service.trainingCalls).toBe(2);
    expect(service.trainingEntriesAccepted).toBe(2);
  });

  test("a full buffer drops the oldest and counts them", async () => {
    const service = await standIn();
    service.behaviour.trainingStatus = 500;
    const { predictor, registry } = remote({ "decode-ttft": on(service.url) }, { trainingBufferSize: 150 });
    for (let i = 0; i < 250; i++) predictor.addTrainingSample("decode-ttft", sample(i), 100 + i, { ttftMs: 5 }, 0);
    expect(predictor.trainingBacklog("decode-ttft")).toBe(150);
    expect(await counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-ttft", reason: "buffer_full" })).toBe(100);
    service.behaviour.trainingStatus = 202;
    await predictor.flushTraining();
    expect(service.trainingEntries.map((e) => (e as { input_token_length: number }).input_token_length)).toEqual(
      Array.from({ length: 150 }, (_, i) => 200 + i),
    );
  });

  test("failed uploads keep their entries for the next flush, bounded by the buffer", async () => {
    const service = await standIn();
    service.behaviour.trainingStatus = 503;
    const { predictor, registry, logger } = remote({ "decode-ttft": on(service.url) }, { trainingBufferSize: 150 });
    for (let i = 0; i < 120; i++) predictor.addTrainingSample("decode-ttft", sample(i), 100 + i, { ttftMs: 5 }, 0);
    await predictor.flushTraining();
    await predictor.flushTraining();
    expect(service.trainingCalls).toBe(2);
    expect(predictor.trainingBacklog("decode-ttft")).toBe(120);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(1);

    // While the oldest 100 are out on a failing upload, newer entries fill the buffer: the oldest give way.
    service.behaviour.trainingDelayMs = 100;
    const flushing = predictor.flushTraining();
    for (let i = 120; i < 250; i++) predictor.addTrainingSample("decode-ttft", sample(i), 100 + i, { ttftMs: 5 }, 0);
    await flushing;
    expect(predictor.trainingBacklog("decode-ttft")).toBe(150);
    expect(await counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-ttft" })).toBe(100);

    service.reset();
    await predictor.flushTraining();
    expect(service.trainingEntriesAccepted).toBe(150);
    expect((service.trainingEntries[0] as { input_token_length: number }).input_token_length).toBe(200);
    expect(predictor.trainingBacklog("decode-ttft")).toBe(0);
    expect(logger.lines.filter((l) => l.level === "info")).toHaveLength(1);
  });

  test("a batch the server refuses with a 4xx is dropped and counted, not resent; the entries behind it still go (found by review)", async () => {
    const service = await standIn();
    // One entry the server will not take: its batch is answered 422, as the real service's validation does.
    const isl = (e: unknown) => (e as { input_token_length: number }).input_token_length;
    service.behaviour.trainingRespond = (entries) =>
      entries.some((e) => isl(e) === 1042 || isl(e) === 2042)
        ? { status: 422, body: JSON.stringify({ detail: [{ type: "value_error", loc: ["body", "entries", 42], msg: "refused" }] }) }
        : undefined;
    const { predictor, registry, logger } = remote({ "decode-tpot": on(service.url) });
    for (let i = 0; i < 250; i++) predictor.addTrainingSample("decode-tpot", sample(i), 1000 + i, { tpotMs: 20 }, 0);
    await predictor.flushTraining();
    await predictor.flushTraining();
    expect(service.calls.map((c) => c.status)).toEqual([422, 202, 202]);
    expect(service.trainingEntries.map(isl)).toEqual(Array.from({ length: 150 }, (_, i) => 1100 + i));
    expect(predictor.trainingBacklog("decode-tpot")).toBe(0);
    const dropped = (reason: string) => counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-tpot", reason });
    expect(await dropped("refused")).toBe(100);
    expect(await counterValue(registry, "headroom_predictor_training_sent_total", { predictor: "decode-tpot" })).toBe(150);
    const warnings = () => logger.lines.filter((l) => l.level === "warn");
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0].message).toMatch(/refused an upload \(http_422\); its entries were dropped/);

    // The same cause again is counted, not logged again; 429 and 408 say "later": kept for the next flush.
    for (let i = 0; i < 100; i++) predictor.addTrainingSample("decode-tpot", sample(i), 2000 + i, { tpotMs: 20 }, 0);
    await predictor.flushTraining();
    expect(await dropped("refused")).toBe(200);
    expect(warnings()).toHaveLength(1);
    for (const status of [429, 408, 500]) {
      service.behaviour.trainingRespond = () => ({ status, body: "{}" });
      predictor.addTrainingSample("decode-tpot", sample(0), 3000, { tpotMs: 20 }, 0);
      await predictor.flushTraining();
      expect(predictor.trainingBacklog("decode-tpot"), `HTTP ${status}`).toBe(1);
      service.behaviour.trainingRespond = undefined;
      await predictor.flushTraining();
      expect(predictor.trainingBacklog("decode-tpot"), `HTTP ${status}`).toBe(0);
    }
    expect(await dropped("refused")).toBe(200);
    expect(service.trainingEntriesAccepted).toBe(153);
  });

  test("a server that takes an upload and answers after a flush period gets it once; one with no answer in time has it dropped, not resent (found by review)", async () => {
    const service = await standIn();
    service.behaviour.trainingDelayMs = 1300;
    const { predictor, registry, logger } = remote({ "decode-tpot": on(service.url) }, { trainingFlushMs: 1000 });
    for (let i = 0; i < 100; i++) predictor.addTrainingSample("decode-tpot", sample(i), 1000 + i, { tpotMs: 20 }, 0);
    for (let k = 0; k < 3; k++) await predictor.flushTraining();
    service.reset();
    await predictor.flushTraining();
    expect(service.trainingEntriesAccepted).toBe(100);
    expect(await counterValue(registry, "headroom_predictor_training_sent_total", { predictor: "decode-tpot" })).toBe(100);

    // Past the upload's own timeout the entries may have arrived: dropped and counted, never sent twice.
    const slow = remote({ "decode-tpot": on(service.url) }, { trainingUploadTimeoutMs: 200 }, registry);
    service.clearRecords();
    service.behaviour.trainingDelayMs = 400;
    for (let i = 0; i < 150; i++) slow.predictor.addTrainingSample("decode-tpot", sample(i), 1000 + i, { tpotMs: 20 }, 0);
    await slow.predictor.flushTraining();
    expect(slow.predictor.trainingBacklog("decode-tpot")).toBe(50);
    expect(await counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-tpot", reason: "timeout" })).toBe(100);
    expect(slow.logger.lines.filter((l) => l.level === "warn").map((l) => l.message)).toEqual([
      "remote decode-tpot training upload got no answer in time; its entries were dropped (the server may have them)",
    ]);
    await new Promise((r) => setTimeout(r, 300));
    service.reset();
    await slow.predictor.flushTraining();
    expect(service.trainingEntries.map((e) => (e as { input_token_length: number }).input_token_length)).toEqual(
      Array.from({ length: 150 }, (_, i) => 1000 + i),
    );
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(0);

    // No connection at all: nothing was delivered, so the entries wait for the next flush.
    const port = Number(new URL(service.url).port);
    await service.close();
    slow.predictor.addTrainingSample("decode-tpot", sample(0), 5000, { tpotMs: 20 }, 0);
    await slow.predictor.flushTraining();
    expect(slow.predictor.trainingBacklog("decode-tpot")).toBe(1);
    const back = await standIn(port);
    await slow.predictor.flushTraining();
    expect(back.trainingEntriesAccepted).toBe(1);
    expect(await counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-tpot" })).toBe(100);
  });

  test("invalid samples and samples for quantities not served are refused", async () => {
    const service = await standIn();
    const { predictor, registry } = remote({ "decode-ttft": on(service.url) });
    expect(predictor.addTrainingSample("decode-ttft", sample(0), 100, {}, 0)).toBe(false);
    expect(predictor.addTrainingSample("decode-ttft", sample(0), 100, { ttftMs: -1 }, 0)).toBe(false);
    expect(predictor.addTrainingSample("decode-ttft", sample(0), 100, { ttftMs: NaN }, 0)).toBe(false);
    expect(predictor.addTrainingSample("decode-ttft", sample(0), 100, { ttftMs: 10 }, NaN)).toBe(false);
    expect(predictor.addTrainingSample("decode-ttft", pod(0, "decode", { kvCapacityTokens: 0 }), 100, { ttftMs: 10 }, 0)).toBe(false);
    expect(predictor.addTrainingSample("decode-tpot", sample(0), 100, { tpotMs: 10 }, 0)).toBe(false);
    expect(await counterValue(registry, "headroom_predictor_invalid_rows_total", { predictor: "decode-ttft" })).toBe(5);
    expect(predictor.trainingBacklog("decode-ttft")).toBe(0);
  });

  test("BoundedQueue: push drops the oldest, putBack keeps the newest of what is put back", () => {
    const q = new BoundedQueue<number>(3);
    expect([1, 2, 3, 4].map((x) => q.push(x))).toEqual([0, 0, 0, 1]);
    expect(q.take(2)).toEqual([2, 3]);
    q.push(5);
    q.push(6);
    expect(q.putBack([2, 3])).toBe(2);
    expect(q.take(10)).toEqual([4, 5, 6]);
    expect(q.size).toBe(0);
  });
});

describe("metrics", () => {
  test("the seed's counter is reused when another module registered it first", async () => {
    const registry = new Registry();
    const seed = new Counter({ name: CALLS_METRIC, help: "seed", labelNames: ["predictor", "status"], registers: [registry] });
    seed.inc({ predictor: "decode-tpot", status: "success" });
    const service = await standIn();
    const { predictor } = remote({ "decode-tpot": on(service.url) }, {}, registry);
    remote({ "decode-tpot": on(service.url) }, {}, registry);
    await predictor.refresh([pod(0, "decode")], GRID);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(2);
  });
});

describe("environment and configuration", () => {
  const remoteAll = { prefillTtft: "remote", decodeTtft: "remote", decodeTpot: "remote" } as const;
  const fullEnv = {
    PREFILL_TTFT_TRAINING_URL: "http://prefill-ttft-predictor-svc:8000",
    PREFILL_TTFT_PREDICTION_URL: "http://p1:8001/, http://p2:8001",
    DECODE_TTFT_TRAINING_URL: "http://decode-ttft-predictor-svc:8000",
    DECODE_TTFT_PREDICTION_URL: "http://decode-ttft-predictor-svc:8001",
    DECODE_TPOT_TRAINING_URL: "https://decode-tpot-predictor-svc:8000",
    DECODE_TPOT_PREDICTION_URL: "https://decode-tpot-predictor-svc:8001",
  };

  test("the six variables, prediction URLs comma-separated", () => {
    // decodeTtft remote gets no training from headroom: said once, as a warning.
    expect(checkRemoteConfig(remoteAll, fullEnv)).toEqual({ problems: [], warnings: [expect.stringMatching(/^predictors\.decodeTtft is remote, but headroom sends its service no training/)] });
    expect(checkRemoteConfig({ ...remoteAll, decodeTtft: "profile" }, { ...fullEnv, DECODE_TTFT_TRAINING_URL: "", DECODE_TTFT_PREDICTION_URL: "" })).toEqual({ problems: [], warnings: [] });
    expect(remoteEndpointsFromEnv(fullEnv)).toEqual({
      "prefill-ttft": { trainingUrl: "http://prefill-ttft-predictor-svc:8000", predictionUrls: ["http://p1:8001", "http://p2:8001"] },
      "decode-ttft": { trainingUrl: "http://decode-ttft-predictor-svc:8000", predictionUrls: ["http://decode-ttft-predictor-svc:8001"] },
      "decode-tpot": { trainingUrl: "https://decode-tpot-predictor-svc:8000", predictionUrls: ["https://decode-tpot-predictor-svc:8001"] },
    });
    expect(Object.keys(remoteEndpointsFromEnv(fullEnv, ["decode-tpot"]))).toEqual(["decode-tpot"]);
    expect(remoteQuantities({ prefillTtft: "profile", decodeTtft: "remote", decodeTpot: "online" })).toEqual(["decode-ttft"]);
  });

  test("remote without its URLs, or with a non-http URL, is a problem naming the variable", () => {
    const { problems } = checkRemoteConfig(remoteAll, {
      PREFILL_TTFT_PREDICTION_URL: "http://p:8001",
      DECODE_TTFT_TRAINING_URL: "ftp://t:8000",
      DECODE_TTFT_PREDICTION_URL: "http://p:8001,not a url",
      DECODE_TPOT_TRAINING_URL: "http://a:1,http://b:2",
      DECODE_TPOT_PREDICTION_URL: " , ",
    });
    expect(problems).toHaveLength(5);
    expect(problems[0]).toMatch(/^PREFILL_TTFT_TRAINING_URL must be set/);
    expect(problems[1]).toMatch(/^DECODE_TTFT_TRAINING_URL must be an http\(s\) URL without a user or password, got "ftp:\/\/t:8000"/);
    expect(problems[2]).toMatch(/^DECODE_TTFT_PREDICTION_URL must hold http\(s\) URLs without a user or password, got "not a url"/);
    expect(problems[3]).toMatch(/^DECODE_TPOT_TRAINING_URL must be one http\(s\) URL/);
    expect(problems[4]).toMatch(/^DECODE_TPOT_PREDICTION_URL must be set/);
    expect(remoteEndpointsFromEnv({ PREFILL_TTFT_PREDICTION_URL: "http://p:8001" })).toEqual({});
  });

  test("a URL with a user or password is refused (fetch refuses it at every call), and the password is not shown", () => {
    const { problems } = checkRemoteConfig(remoteAll, {
      ...fullEnv,
      DECODE_TPOT_TRAINING_URL: "http://u:topsecretpw@127.0.0.1:9/",
      DECODE_TPOT_PREDICTION_URL: "http://127.0.0.1:9,ftp://x:pw2secret@h/",
    });
    expect(problems).toEqual([
      'DECODE_TPOT_TRAINING_URL must be an http(s) URL without a user or password, got "http://***@127.0.0.1:9/"',
      'DECODE_TPOT_PREDICTION_URL must hold http(s) URLs without a user or password, got "ftp://***@h/"',
    ]);
  });

  test("URLs for a quantity not configured remote are ignored with a warning", () => {
    const result = checkRemoteConfig({ prefillTtft: "profile", decodeTtft: "online", decodeTpot: "remote" }, fullEnv);
    expect(result.problems).toEqual([]);
    expect(result.warnings).toEqual([
      "PREFILL_TTFT_TRAINING_URL and PREFILL_TTFT_PREDICTION_URL ignored: predictors.prefillTtft is profile, not remote",
      "DECODE_TTFT_TRAINING_URL and DECODE_TTFT_PREDICTION_URL ignored: predictors.decodeTtft is online, not remote",
    ]);
  });
});

describe("in its own thread", () => {
  test("the threaded predictor fills what the in-thread one fills, mirrors its counters and forwards training", async () => {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const ep = { trainingUrl: service.url, predictionUrls: [service.url] };
    const endpoints = { "prefill-ttft": ep, "decode-tpot": ep };
    const options = { timeoutMs: 2000, trainingBufferSize: 1000, trainingFlushMs: 50, refreshMs: 1000 };
    const pods = [pod(0, "prefill", { prefillMsInFlight: 60 }), pod(1, "decode"), pod(2, "both", { prefillMsInFlight: 60 })];
    const direct = remote(endpoints, options);
    await direct.predictor.refresh(pods, GRID);
    const registry = new Registry();
    const threaded = new ThreadedRemotePredictor({ endpoints, fallback: profile, options, clock: direct.clock, registry, logger: new MemoryLogger() });
    try {
      await threaded.refresh(pods, GRID);
      for (const q of ["prefill-ttft", "decode-ttft", "decode-tpot"] as const) {
        const a = allocatePredictions(pods.length, GRID);
        const b = allocatePredictions(pods.length, GRID);
        direct.predictor.fill(q, pods, a);
        threaded.fill(q, pods, b);
        expect(b).toEqual(a);
      }
      expect(threaded.freshPods("decode-tpot", GRID)).toBe(2);
      // Picks made since the refresh began: the prefill queue is what the pods' in-flight prefill work
      // has grown by, which the values (asked before) do not count.
      const later = pods.map((p) => ({ ...p, prefillMsInFlight: p.prefillMsInFlight + 25 }));
      const a = allocatePredictions(pods.length, GRID);
      const b = allocatePredictions(pods.length, GRID);
      direct.predictor.fill("prefill-ttft", later, a);
      threaded.fill("prefill-ttft", later, b);
      expect(b).toEqual(a);
      expect([b.prefillQueueMs[0], b.prefillQueueMs[2]]).toEqual([25, 25]);
      expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(1);
      const before = service.trainingEntriesAccepted;
      threaded.addTrainingSample("decode-tpot", pods[1], 1000, { tpotMs: 12 }, Date.now());
      const deadline = Date.now() + 3000;
      while (service.trainingEntriesAccepted === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(service.trainingEntriesAccepted).toBe(before + 1);
    } finally {
      threaded.close();
    }
  });

  test("pools refreshed back to back each get their own pods' values", async () => {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const ep = { trainingUrl: service.url, predictionUrls: [service.url] };
    const threaded = new ThreadedRemotePredictor({
      endpoints: { "prefill-ttft": ep },
      fallback: profile,
      options: { timeoutMs: 2000, trainingBufferSize: 10, trainingFlushMs: 50, refreshMs: 1000 },
      clock: realClock,
      registry: new Registry(),
      logger: new MemoryLogger(),
    });
    try {
      const pools = [[pod(0, "prefill")], [pod(1, "prefill")], [pod(2, "prefill")]];
      await Promise.all(pools.map((pods) => threaded.refresh(pods, GRID)));
      for (const pods of pools) expect(threaded.freshPods("prefill-ttft", GRID), pods[0].address).toBe(3);
    } finally {
      threaded.close();
    }
  });

  test("a counter mirrored before its first value still takes labelled values later: /metrics never throws (found by bench:reliability)", async () => {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const ep = { trainingUrl: service.url, predictionUrls: [service.url] };
    const registry = new Registry();
    const pods = [pod(0, "prefill"), pod(1, "decode")];
    const threaded = new ThreadedRemotePredictor({
      endpoints: { "prefill-ttft": ep },
      fallback: profile,
      options: { timeoutMs: 2000, trainingBufferSize: 10, trainingFlushMs: 50, refreshMs: 1000 },
      clock: realClock,
      registry,
      logger: new MemoryLogger(),
    });
    try {
      // A good refresh mirrors headroom_predictor_fallbacks_total with no value yet...
      await threaded.refresh(pods, GRID);
      await registry.metrics();
      // ...then a failing one gives it its first labelled value.
      service.behaviour = { ...service.behaviour, predict: "error" };
      await threaded.refresh(pods, GRID);
      const text = await registry.metrics();
      expect(text).toMatch(/^headroom_predictor_fallbacks_total\{predictor="prefill-ttft",reason="[a-z_0-9]+"\} 1$/m);
    } finally {
      threaded.close();
    }
  });
});

describe("in its own thread: late answers, a dying thread, pods that leave", () => {
  const threads: Threaded[] = [];
  afterEach(() => {
    for (const t of threads.splice(0)) t.close();
  });

  async function threaded(endpoints: RemoteEndpointsByQuantity, options: Partial<RemotePredictorOptions> = {}) {
    const { ThreadedRemotePredictor } = await import("../src/predictors/remote-threaded.js");
    const clock = new ManualClock();
    const registry = new Registry();
    const logger = new MemoryLogger();
    const predictor = new ThreadedRemotePredictor({
      endpoints,
      fallback: profile,
      options: { timeoutMs: 2000, refreshMs: 1000, trainingBufferSize: 100, trainingFlushMs: 50, ...options },
      clock,
      registry,
      logger,
    });
    threads.push(predictor);
    return { predictor, clock, registry, logger };
  }

  async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The thread dies, as on any uncaught exception or OOM in it: here, a message its handler throws on. */
  function crash(predictor: Threaded): void {
    const worker = (predictor as unknown as { worker: import("node:worker_threads").Worker }).worker;
    worker.postMessage({ t: "train", quantity: "decode-tpot", features: null, inputTokens: 1, actual: { tpotMs: 1 }, timestampMs: 0 });
  }

  test("an answer the main thread gets after the freshness limit is a stale fallback, counted and logged", async () => {
    const service = await standIn();
    const { predictor, clock, registry, logger } = await threaded({ "decode-tpot": on(service.url) }, { refreshMs: 100, timeoutMs: 250 });
    const pods = [pod(0, "decode")];
    await predictor.refresh(pods, GRID);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(1);

    service.behaviour.predictDelayMs = 150;
    const refreshed = predictor.refresh(pods, GRID);
    // Past the limit the refresh settles without the answer (it used to wait 5 s of real time).
    clock.advance(301);
    await refreshed;
    await until("the stale answer to be counted", async () => (await counterValue(registry, "headroom_predictor_fallbacks_total", { reason: "stale" })) === 1);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(1);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "error" })).toBe(1);
    expect(filled(predictor, "decode-tpot", pods)).toEqual(filled(profile, "decode-tpot", pods));
    expect(logger.lines.filter((l) => l.level === "warn").map((l) => l.fields?.cause)).toEqual(["overdue", "stale"]);
  });

  test("a thread that dies is noticed: refreshes fall back at once, training is counted as dropped, a new thread takes over", async () => {
    const { THREAD_RESTART_DELAYS_MS } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const { predictor, clock, registry, logger } = await threaded({ "decode-tpot": on(service.url) });
    const pods = [pod(0, "decode")];
    await predictor.refresh(pods, GRID);
    expect(predictor.freshPods("decode-tpot", GRID)).toBe(1);

    crash(predictor);
    await until("the exit to be noticed", () => logger.lines.some((l) => l.level === "error" && /thread exited/.test(l.message)));
    expect(predictor.threadUp).toBe(false);
    expect(logger.lines.filter((l) => l.level === "error")).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ code: 1, error: expect.stringMatching(/TypeError/), restartInMs: THREAD_RESTART_DELAYS_MS[0] }) }),
    ]);
    expect(await counterValue(registry, "headroom_predictor_thread_exits_total", {})).toBe(1);
    // Settled without the clock moving: nothing waited for the dead thread's answer.
    await predictor.refresh(pods, GRID);
    expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { predictor: "decode-tpot", reason: "thread_down" })).toBe(1);
    // The dead thread's counts stay: one success before, one error now.
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(1);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "error" })).toBe(1);
    predictor.addTrainingSample("decode-tpot", pods[0], 1000, { tpotMs: 12 }, Date.now());
    expect(await counterValue(registry, "headroom_predictor_training_dropped_total", { predictor: "decode-tpot", reason: "thread_down" })).toBe(1);

    clock.advance(THREAD_RESTART_DELAYS_MS[0]);
    expect(predictor.threadUp).toBe(true);
    expect(logger.lines.some((l) => l.level === "info" && l.message === "remote predictor thread restarted")).toBe(true);
    clock.advance(predictor.maxAgeMs + 1);
    await predictor.refresh(pods, GRID);
    expect(predictor.freshPods("decode-tpot", GRID)).toBe(1);
    expect(await counterValue(registry, CALLS_METRIC, { predictor: "decode-tpot", status: "success" })).toBe(2);
    const before = service.trainingEntriesAccepted;
    predictor.addTrainingSample("decode-tpot", pods[0], 1000, { tpotMs: 12 }, Date.now());
    await until("the new thread to upload", () => service.trainingEntriesAccepted === before + 1);
  });

  test("a thread that keeps dying without answering stays down after the last backoff", async () => {
    const { THREAD_RESTART_DELAYS_MS } = await import("../src/predictors/remote-threaded.js");
    const service = await standIn();
    const { predictor, clock, logger, registry } = await threaded({ "decode-tpot": on(service.url) });
    for (let exit = 1; exit <= THREAD_RESTART_DELAYS_MS.length + 1; exit++) {
      await until("a thread", () => predictor.threadUp);
      crash(predictor);
      await until(`exit ${exit} to be noticed`, async () => (await counterValue(registry, "headroom_predictor_thread_exits_total", {})) === exit);
      clock.advance(THREAD_RESTART_DELAYS_MS[exit - 1] ?? 60_000);
    }
    clock.advance(600_000);
    expect(predictor.threadUp).toBe(false);
    expect(logger.lines.filter((l) => l.message === "remote predictor thread restarted")).toHaveLength(THREAD_RESTART_DELAYS_MS.length);
    expect(logger.lines.some((l) => /keeps exiting; it stays down/.test(l.message))).toBe(true);
    await predictor.refresh([pod(0, "decode")], GRID);
    expect(await counterValue(registry, "headroom_predictor_fallbacks_total", { reason: "thread_down" })).toBe(1);
  });

  test("the main thread forgets the values of pods that left once they are stale", async () => {
    const service = await standIn();
    const { predictor, clock } = await threaded({ "decode-tpot": on(service.url) });
    const stays = pod(0, "decode");
    // Rollouts: each generation of four pods replaces the last; one pod stays throughout.
    for (let generation = 1; generation <= 10; generation++) {
      const pods = [stays, ...Array.from({ length: 4 }, (_, k) => pod(generation * 8 + k, "decode"))];
      await predictor.refresh(pods, GRID);
      expect(predictor.freshPods("decode-tpot", GRID)).toBe(5);
      expect(predictor.heldPods("decode-tpot"), `generation ${generation}`).toBe(5);
      clock.advance(predictor.maxAgeMs + 1);
    }
  });
});
