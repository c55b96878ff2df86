// A pool's snapshot from live pod state: roles and candidacy from the registry, curves from the
// predictors, versions that keep their pod order, and main-thread pick accounting that matches the
// kernel's in-batch accounting exactly.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { DEFAULTS } from "../src/config/schema.js";
import { PoolState, VERSIONS_KEPT } from "../src/engine/pool-state.js";
import { TwinKernel } from "../src/kernel/twin.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL } from "../src/kernel/types.js";
import { MemoryLogger } from "../src/log.js";
import { InflightLoad } from "../src/pods/inflight.js";
import { PodRegistry } from "../src/pods/registry.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { ProfilePredictor } from "../src/predictors/profile.js";
import { overlayRemote } from "../src/predictors/remote.js";
import { logGrid, type PodFeatures, type Predictor } from "../src/predictors/types.js";
import { request } from "./fixtures/pools.js";

const profile = LatencyProfile.shipped("h100");
const profiles = new Map([["h100", profile]]);

function setup(predictorFor?: (profilePredictor: ProfilePredictor) => Predictor) {
  const clock = new ManualClock(5_000);
  const logger = new MemoryLogger();
  const registry = new PodRegistry({ clock, staleAfterMs: 1000 });
  const inflight = new InflightLoad<PodFeatures>({ clock, reflectDelayMs: 200, ttlFactor: 2 });
  const base = new ProfilePredictor({ profiles, tpEfficiency: 0.85 });
  const predictor = predictorFor ? predictorFor(base) : base;
  const pool = new PoolState(
    {
      name: "medium",
      tp: 1,
      gpuMemoryUtilization: 0.9,
      expected: { isl: 2000, osl: 150 },
      gridTokens: logGrid(12, 16, 32768),
      defaultProfile: "h100",
      profiles,
      predictors: { "prefill-ttft": predictor, "decode-ttft": predictor, "decode-tpot": predictor },
      clock,
      logger,
    },
    registry,
    inflight,
  );
  return { clock, logger, registry, inflight, pool };
}

const metricsUrl = "http://127.0.0.1:9/metrics";

describe("refresh", () => {
  it("marks roles and candidacy from the registry, in address order", () => {
    const { registry, pool, clock } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.4:8000", pool: "medium", role: "decode", metricsUrl },
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill" },
      { address: "10.0.0.3:8000", pool: "medium", role: "both", draining: true },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode", metricsUrl },
      { address: "10.0.0.9:8000", pool: "other", role: "both" },
    ]);
    registry.recordScrape("10.0.0.4:8000", { ok: true, metrics: { scrapedAtMs: clock.nowMs(), waiting: 0, running: 3, kvUsage: 0.25 } });
    const snap = pool.refresh();
    expect(pool.latestPods?.addresses).toEqual(["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"]);
    expect([...snap.roles]).toEqual([
      ROLE_PREFILL | ROLE_ELIGIBLE,
      ROLE_DECODE, // awaiting its first scrape
      ROLE_PREFILL | ROLE_DECODE, // draining
      ROLE_DECODE | ROLE_ELIGIBLE,
    ]);
    expect(pool.latestPods?.statuses[1].excludedBecause).toBe("awaiting its first scrape");
    const scraped = pool.latestPods!.features[3];
    expect(scraped.running).toBe(3);
    expect(scraped.kvTokensUsed).toBe(0.25 * profile.kvCapacityTokens(1, 0.9));
  });

  it("fails open: when every pod went stale, those with earlier metrics stay candidates, and it is logged once", () => {
    const { registry, pool, clock, logger } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill", metricsUrl },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode", metricsUrl },
    ]);
    for (const a of ["10.0.0.1:8000", "10.0.0.2:8000"]) registry.recordScrape(a, { ok: true, metrics: { scrapedAtMs: clock.nowMs(), waiting: 0, running: 1, kvUsage: 0.1 } });
    expect([...pool.refresh().roles].every((r) => (r & ROLE_ELIGIBLE) !== 0)).toBe(true);
    clock.advance(1500);
    const stale = pool.refresh();
    expect([...stale.roles].every((r) => (r & ROLE_ELIGIBLE) !== 0)).toBe(true);
    expect(pool.latestPods!.statuses.map((s) => [s.freshness, s.failOpen])).toEqual([
      ["stale", true],
      ["stale", true],
    ]);
    pool.refresh();
    expect(logger.lines.filter((l) => l.message.startsWith("every pod of the pool failed its scrapes"))).toHaveLength(1);
    // One pod scraped again: the other is out, as usual.
    registry.recordScrape("10.0.0.2:8000", { ok: true, metrics: { scrapedAtMs: clock.nowMs(), waiting: 0, running: 1, kvUsage: 0.1 } });
    const back = pool.refresh();
    expect([...back.roles].map((r) => (r & ROLE_ELIGIBLE) !== 0)).toEqual([false, true]);
    expect(logger.lines.some((l) => l.message === "the pool's pods are scraped again")).toBe(true);
  });

  it("publishes a new version each refresh and remembers the pod order of the last few", () => {
    const { registry, pool } = setup();
    registry.upsert("push", { address: "a:1", pool: "medium", role: "both" });
    const v1 = pool.refresh().version;
    registry.upsert("push", { address: "b:1", pool: "medium", role: "both" });
    const v2 = pool.refresh().version;
    expect(v2).toBe(v1 + 1);
    expect(pool.podsAt(v1)?.addresses).toEqual(["a:1"]);
    expect(pool.podsAt(v2)?.addresses).toEqual(["a:1", "b:1"]);
    expect(pool.shared.version).toBe(v2);
    for (let i = 0; i < VERSIONS_KEPT; i++) pool.refresh();
    expect(pool.podsAt(v1)).toBeUndefined();
  });

  it("a predictor that throws takes the pool's pods out of the candidates and is logged once", () => {
    const broken: Predictor = {
      kind: "profile",
      fill() {
        throw new Error("profile table corrupt");
      },
    };
    const { registry, pool, logger } = setup(() => broken);
    registry.upsert("push", { address: "a:1", pool: "medium", role: "both" });
    for (let i = 0; i < 3; i++) expect(pool.refresh().roles[0] & ROLE_ELIGIBLE).toBe(0);
    expect(logger.lines.filter((l) => l.level === "warn").map((l) => l.fields?.subject)).toEqual(["prefill-ttft", "decode-ttft", "decode-tpot"]);
  });
});

describe("pick accounting", () => {
  it("loads added on the main thread between picks equal the kernel's in-batch accounting", () => {
    const { registry, pool, inflight } = setup();
    registry.replacePool("static", "medium", [
      ...Array.from({ length: 3 }, (_, i) => ({ address: `10.0.1.${i}:8000`, pool: "medium", role: "prefill" as const })),
      ...Array.from({ length: 3 }, (_, i) => ({ address: `10.0.2.${i}:8000`, pool: "medium", role: "decode" as const })),
      { address: "10.0.3.0:8000", pool: "medium", role: "both" as const },
    ]);
    const reqs = [
      request({ inputTokens: 3000, outputTokens: 200, sloTtftMs: 400, sloTpotMs: 30, seed: 11 }),
      request({ inputTokens: 100, outputTokens: 50, sloTtftMs: 400, sloTpotMs: 30, seed: 12 }),
      request({ inputTokens: 5000, outputTokens: 300, sloTtftMs: 600, sloTpotMs: 40, seed: 13 }),
      request({ inputTokens: 2000, outputTokens: 100, sloTtftMs: 200, seed: 14 }),
    ];
    // `best` makes the short prompt's local pair win deterministically (no transfer), so both kinds occur.
    const params = { ...DEFAULTS.optimizer, headroomStrategy: "best" as const };
    const snap = pool.refresh();
    const batch = new TwinKernel(params, DEFAULTS.topology);
    batch.loadSnapshot(snap);
    const together = batch.pick(reqs);

    const oneByOne = new TwinKernel(params, DEFAULTS.topology);
    reqs.forEach((req, k) => {
      oneByOne.loadSnapshot(pool.snapshot!);
      const [result] = oneByOne.pick([req]);
      expect(result).toEqual(together[k]);
      expect(pool.recordPick(`r${k}`, req, result)).not.toBeNull();
    });
    expect(inflight.size).toBe(reqs.length);
    const local = together.filter((r) => r.prefill < 0).length;
    expect(local).toBeGreaterThan(0);
    expect(local).toBeLessThan(reqs.length);
  });

  it("in-flight picks enter the next refresh's features and leave them when reported", () => {
    const { registry, pool, inflight } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill" },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode" },
    ]);
    pool.refresh();
    const req = request({ inputTokens: 4000, outputTokens: 100, sloTtftMs: 1000, sloTpotMs: 50, seed: 1 });
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(pool.snapshot!);
    const [result] = twin.pick([req]);
    expect(result.prefill).toBe(0);
    pool.recordPick("r1", req, result);
    pool.refresh();
    const [p, d] = pool.latestPods!.features;
    expect(p.prefillRequestsInFlight).toBe(1);
    expect(p.prefillMsInFlight).toBeCloseTo(profile.prefillMs(4000), 6);
    expect(d.decodeRequestsInFlight).toBe(1);
    expect(pool.snapshot!.prefillQueueMs[0]).toBeCloseTo(profile.prefillMs(4000), 6);
    inflight.report("r1");
    pool.refresh();
    expect(pool.snapshot!.prefillQueueMs[0]).toBe(0);
  });

  it("a pick on a pod with a remote TTFT adds the pod's prefill compute to its queue, not the TTFT, which holds the queue", () => {
    const grid = logGrid(12, 16, 32768);
    // The service says 900 ms at every size: a long queue ahead of a short prefill.
    const latest = new Map([["10.0.0.1:8000", { values: new Float64Array(grid.length).fill(900), grid, atMs: 5_000, refresh: 1 }]]);
    const { registry, pool, inflight } = setup((base) => ({
      kind: "remote",
      fill(quantity, pods, out) {
        base.fill(quantity, pods, out);
        overlayRemote(quantity, pods, out, latest, 5_000, 300);
      },
    }));
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill" },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode" },
    ]);
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(pool.refresh());
    const req = request({ inputTokens: 4000, outputTokens: 100, sloTtftMs: 5000, sloTpotMs: 50, seed: 1 });
    const [result] = twin.pick([req]);
    expect(result).toMatchObject({ prefill: 0, prefillTtftMs: 900 });
    pool.recordPick("r1", req, result);
    const compute = profile.prefillMs(4000);
    expect(compute).toBeLessThan(900);
    expect(pool.snapshot!.prefillQueueMs[0]).toBeCloseTo(compute, 6);
    expect(inflight.podLoad("10.0.0.1:8000").prefillMsAhead).toBeCloseTo(compute, 6);
    // The next pick, as a kernel loaded from the shared snapshot sees it.
    twin.loadSnapshot(pool.snapshot!);
    expect(twin.pick([{ ...req, seed: 2 }])[0].prefillTtftMs).toBeCloseTo(900 + compute, 6);
  });

  it("a result computed before a refresh (a worker's) adds its load to the newer snapshot, which did not count it", () => {
    const { registry, pool } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill" },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode" },
    ]);
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(pool.refresh());
    const req = request({ inputTokens: 4000, outputTokens: 100, sloTtftMs: 1000, sloTpotMs: 50, seed: 1 });
    const [result] = twin.pick([req]);
    expect(result.prefill).toBe(0);
    const newer = pool.refresh();
    expect(newer.version).toBeGreaterThan(result.version);
    pool.recordPick("r1", req, result);
    expect(pool.snapshot!.prefillQueueMs[0]).toBeCloseTo(profile.prefillMs(4000), 6);
    // The refresh after counts the in-flight entry itself: the same load.
    pool.refresh();
    expect(pool.snapshot!.prefillQueueMs[0]).toBeCloseTo(profile.prefillMs(4000), 6);
  });

  it("a result whose pods moved in the newer snapshot is accounted by address, never by its old index", () => {
    const { registry, pool, inflight } = setup();
    const decode = { address: "10.0.0.1:8000", pool: "medium", role: "decode" as const };
    const prefill = { address: "10.0.0.3:8000", pool: "medium", role: "prefill" as const };
    registry.replacePool("static", "medium", [decode, { address: "10.0.0.2:8000", pool: "medium", role: "prefill", draining: true }, prefill]);
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(pool.refresh());
    // 20,000 uncached tokens: the last grid segment, where reading past the newer snapshot's pods gave NaN.
    const req = request({ inputTokens: 20_000, outputTokens: 100, sloTtftMs: 5000, sloTpotMs: 50, seed: 1 });
    const [result] = twin.pick([req]);
    expect(result.prefill).toBe(2);
    // The draining pod goes while the pick is out: the prefill pod moves from index 2 to 1.
    registry.replacePool("static", "medium", [decode, prefill]);
    pool.refresh();
    expect(pool.latestPods!.addresses).toEqual(["10.0.0.1:8000", "10.0.0.3:8000"]);
    pool.recordPick("r1", req, result);
    expect(pool.snapshot!.prefillQueueMs[1]).toBeCloseTo(profile.prefillMs(20_000), 6);
    expect(inflight.podLoad("10.0.0.3:8000").prefillMsAhead).toBeCloseTo(profile.prefillMs(20_000), 6);
  });

  it("a result naming a forgotten version or no pods records nothing", () => {
    const { registry, pool, inflight } = setup();
    registry.upsert("push", { address: "a:1", pool: "medium", role: "both" });
    const snap = pool.refresh();
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(snap);
    const [result] = twin.pick([request({ seed: 3 })]);
    for (let i = 0; i < VERSIONS_KEPT; i++) pool.refresh();
    expect(pool.recordPick("old", request(), result)).toBeNull();
    expect(pool.recordPick("none", request(), { ...result, version: pool.snapshot!.version, decode: -1 })).toBeNull();
    expect(inflight.size).toBe(0);
  });
});
