// A pool's snapshot from live pod state: roles and candidacy from the registry, curves from the
// predictors, versions that keep their pod order, and main-thread pick accounting that matches the
// kernel's in-batch accounting exactly.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { DEFAULTS } from "../src/config/schema.js";
import { gridWithCapacities, PoolState, VERSIONS_KEPT } from "../src/engine/pool-state.js";
import { gridPosition, interpolate, TwinKernel } from "../src/kernel/twin.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL, type PoolSnapshot } from "../src/kernel/types.js";
import { MAX_GRID_POINTS } from "../src/kernel/validate.js";
import { MemoryLogger } from "../src/log.js";
import { InflightLoad } from "../src/pods/inflight.js";
import { PodRegistry } from "../src/pods/registry.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { MAX_PREDICTION_MS, ProfilePredictor } from "../src/predictors/profile.js";
import { overlayRemote } from "../src/predictors/remote.js";
import { logGrid, type PodFeatures, type Predictor } from "../src/predictors/types.js";
import { request } from "./fixtures/pools.js";

const profile = LatencyProfile.shipped("h100");
const profiles = new Map([["h100", profile]]);

function setup(predictorFor?: (profilePredictor: ProfilePredictor) => Predictor, gridTokens = logGrid(12, 16, 32768)) {
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
      gridTokens,
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
    expect(logger.lines.filter((l) => l.message.startsWith("every scraped pod of the pool failed its scrapes"))).toHaveLength(1);
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

  it.each(["both", "decode"] as const)("a local prefill's load on a %s pod outlives the refresh, which counts it from the in-flight entry", (role) => {
    const { registry, pool } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role },
      ...(role === "decode" ? [{ address: "10.0.0.2:8000", pool: "medium", role: "prefill" as const }] : []),
    ]);
    const params = { ...DEFAULTS.optimizer, localPrefill: "compete" as const, headroomStrategy: "best" as const };
    const twin = new TwinKernel(params, DEFAULTS.topology);
    twin.loadSnapshot(pool.refresh());
    const req = request({ inputTokens: 2000, outputTokens: 100, sloTtftMs: 5000, sloTpotMs: 50, seed: 1 });
    const [first] = twin.pick([req]);
    expect(first.prefill).toBe(-1);
    pool.recordPick("r1", req, first);
    twin.loadSnapshot(pool.snapshot!);
    const [between] = twin.pick([{ ...req, seed: 2 }]);
    expect(between.decodeTtftMs).toBeGreaterThan(first.decodeTtftMs + 0.9 * profile.prefillMs(2000));
    // The clock stands still: the same entry, nothing done or reflected. It was dropped here.
    twin.loadSnapshot(pool.refresh());
    const [after] = twin.pick([{ ...req, seed: 2 }]);
    expect(after.decodeTtftMs).toBeGreaterThan(first.decodeTtftMs + 0.9 * profile.prefillMs(2000));
  });

  it("a refresh puts a pick's load where the kernel put it between refreshes: a remote prefill on a both pod in its prefill queue alone", () => {
    const { registry, pool } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "both" },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode" },
    ]);
    const params = { ...DEFAULTS.optimizer, localPrefill: "never" as const };
    const twin = new TwinKernel(params, DEFAULTS.topology);
    twin.loadSnapshot(pool.refresh());
    const req = request({ inputTokens: 2000, outputTokens: 100, sloTtftMs: 5000, sloTpotMs: 50, seed: 1 });
    const [pick] = twin.pick([req]);
    expect(pick).toMatchObject({ prefill: 0, decode: 1 });
    pool.recordPick("r1", req, pick);
    const loads = (s: typeof pool.snapshot) => [s!.prefillQueueMs[0], s!.decodeQueueMs[0]];
    const between = loads(pool.snapshot);
    expect(between[0]).toBeCloseTo(profile.prefillMs(2000), 6);
    expect(between[1]).toBe(0);
    // The same instant: nothing done or reflected. The both pod's decode queue jumped to 107 ms here.
    pool.refresh();
    const after = loads(pool.snapshot);
    expect(after[0]).toBeCloseTo(between[0], 6);
    expect(after[1]).toBe(0);
  });

  it("a pick on a pod with a remote TTFT adds the pod's prefill compute to its queue, not the TTFT, which holds the queue", () => {
    const grid = logGrid(12, 16, 32768);
    // The service says 900 ms at every size: a long queue ahead of a short prefill.
    const latest = new Map([["10.0.0.1:8000", { values: new Float64Array(grid.length).fill(900), grid, atMs: 5_000, refresh: 1, prefillMsInFlight: 0, localPrefillMsInFlight: 0 }]]);
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
    // A refresh before the service answers again: its values count the queue as it stood without this
    // pick, which the refresh keeps (it was set to 0 there).
    pool.refresh();
    expect(pool.snapshot!.prefillQueueMs[0]).toBeCloseTo(compute, 6);
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

describe("KV capacity on the grid", () => {
  const profilePredictor = new ProfilePredictor({ profiles, tpEfficiency: 0.85 });
  /** A curve as the kernel reads it for pod i at x tokens. */
  const at = (snap: PoolSnapshot, curve: Float64Array, i: number, x: number) =>
    interpolate(curve, snap.pods, snap.gridTokens.length, gridPosition(snap.gridTokens, x), i);
  const scrapeCapacity = (registry: PodRegistry, clock: ManualClock, address: string, kvCapacityTokens: number) =>
    registry.recordScrape(address, { ok: true, metrics: { scrapedAtMs: clock.nowMs(), waiting: 0, running: 0, kvUsage: 0, kvCapacityTokens } });

  it("a prompt that fits a 10,000-token KV cache gets the pod's wait, a longer one the saturated value", () => {
    const { registry, pool, clock } = setup();
    registry.replacePool("static", "medium", [
      { address: "10.0.0.1:8000", pool: "medium", role: "prefill", metricsUrl },
      { address: "10.0.0.2:8000", pool: "medium", role: "decode", metricsUrl },
      { address: "10.0.0.3:8000", pool: "medium", role: "decode", metricsUrl },
    ]);
    scrapeCapacity(registry, clock, "10.0.0.1:8000", 5_000);
    scrapeCapacity(registry, clock, "10.0.0.2:8000", 10_000);
    scrapeCapacity(registry, clock, "10.0.0.3:8000", 20_000);
    const snap = pool.refresh();
    // A prefill pod's capacity sets no decode wait: it takes no knots.
    expect(snap.gridTokens).not.toContain(5_000);
    expect(snap.gridTokens).toContain(10_000);
    const [, small, large] = pool.latestPods!.features;
    expect([small.kvCapacityTokens, large.kvCapacityTokens]).toEqual([10_000, 20_000]);
    for (const isl of [2000, 9000, 9500, 10_000]) {
      // The configured grid has points at 8,192 and 16,384 tokens only: interpolated there, 9,500
      // tokens were predicted 1.6 million ms.
      expect(at(snap, snap.decodeWaitMs, 1, isl), `${isl} tokens`).toBeCloseTo(profilePredictor.decodeWaitMs(small, isl), 6);
      expect(at(snap, snap.decodeWaitMs, 1, isl)).toBeLessThan(100);
    }
    for (const isl of [10_001, 10_500, 19_000, 32_768]) expect(at(snap, snap.decodeWaitMs, 1, isl), `${isl} tokens`).toBe(MAX_PREDICTION_MS);
    expect(at(snap, snap.decodeWaitMs, 2, 19_500)).toBeCloseTo(profilePredictor.decodeWaitMs(large, 19_500), 6);
    expect(at(snap, snap.decodeWaitMs, 2, 20_500)).toBe(MAX_PREDICTION_MS);
    // The other curves are only sampled more finely: TPOT at the knots is the profile's.
    expect(at(snap, snap.tpotMs, 1, 10_000)).toBeCloseTo(profilePredictor.stepMs(small, 10_000), 9);

    // What a pick sees: the kernel's decode TTFT on the pair.
    const twin = new TwinKernel(DEFAULTS.optimizer, DEFAULTS.topology);
    twin.loadSnapshot(snap);
    const pick = (inputTokens: number, seed: number) => twin.pick([request({ inputTokens, outputTokens: 100, sloTtftMs: 5000, sloTpotMs: 50, seed })])[0];
    const fits = pick(9500, 1);
    const wait = fits.decode === 1 ? profilePredictor.decodeWaitMs(small, 9500) : profilePredictor.decodeWaitMs(large, 9500);
    expect(fits.decodeTtftMs).toBeCloseTo(wait, 6);
    expect(fits.decodeTtftMs).toBeLessThan(100);
    // Only the 20,000-token pod can hold 10,500 tokens: the 10,000-token one saturates.
    expect(pick(10_500, 2).decode).toBe(2);
    expect(twin.pick([request({ inputTokens: 10_500, sloTtftMs: 5000, seed: 3 })])[0].outcome).toBe("positive_headroom");
  });

  it("a remote service is asked on the configured grid, and its curve reads the same on the grid with knots", () => {
    const grid = logGrid(12, 16, 32768);
    const values = Float64Array.from(grid, (x) => 5 + Math.sqrt(x));
    const latest = new Map([["10.0.0.2:8000", { values, grid, atMs: 5_000, refresh: 1, prefillMsInFlight: 0, localPrefillMsInFlight: 0 }]]);
    const asked: Float64Array[] = [];
    const { registry, pool, clock } = setup((base) => ({
      kind: "remote",
      fill(quantity, pods, out) {
        base.fill(quantity, pods, out);
        overlayRemote(quantity, pods, out, latest, 5_000, 300);
      },
      refresh(_pods, gridTokens) {
        asked.push(gridTokens);
        return Promise.resolve();
      },
    }));
    registry.replacePool("static", "medium", [{ address: "10.0.0.2:8000", pool: "medium", role: "decode", metricsUrl }]);
    scrapeCapacity(registry, clock, "10.0.0.2:8000", 10_000);
    const snap = pool.refresh();
    expect(snap.gridTokens.length).toBe(grid.length + 2);
    expect(asked).toEqual([grid]);
    const coarse = (x: number) => interpolate(values, 1, grid.length, gridPosition(grid, x), 0);
    for (const x of [1, 16, 100, 7000, 9500, 10_000, 10_001, 12_000, 32_768, 50_000]) {
      expect(at(snap, snap.tpotMs, 0, x), `${x} tokens`).toBeCloseTo(coarse(x), 9);
      // The service knows no KV capacity: a prompt that cannot fit gets the saturated wait, as with the profile.
      if (x <= 10_000) expect(at(snap, snap.decodeWaitMs, 0, x), `${x} tokens`).toBeCloseTo(coarse(x), 9);
      else expect(at(snap, snap.decodeWaitMs, 0, x), `${x} tokens`).toBe(MAX_PREDICTION_MS);
    }
  });

  it("more capacities than the grid has room for are grouped; each pod is treated as holding its group's smallest, logged once", () => {
    const { registry, pool, clock, logger } = setup();
    // 40 decode pods of 40 capacities: 12 configured points leave room for 26 knot pairs.
    const capacities = Array.from({ length: 40 }, (_, i) => 4000 + 700 * i + (i % 3) * 10);
    const pods = capacities.map((_, i) => ({ address: `10.0.1.${i}:8000`, pool: "medium", role: "decode" as const, metricsUrl }));
    registry.replacePool("static", "medium", pods);
    capacities.forEach((c, i) => scrapeCapacity(registry, clock, pods[i].address, c));
    pool.refresh();
    const snap = pool.refresh();
    expect(snap.gridTokens.length).toBeLessThanOrEqual(MAX_GRID_POINTS);
    const features = pool.latestPods!.features;
    const address = pool.latestPods!.addresses;
    for (let i = 0; i < snap.pods; i++) {
      const real = capacities[pods.findIndex((p) => p.address === address[i])];
      // The pod's own features keep its capacity (the planners' utilisation and remote rows read them).
      expect(features[i].kvCapacityTokens).toBe(real);
      // Where its wait saturates: the largest grid point up to its capacity that still fits.
      const held = Math.max(...[...snap.gridTokens].filter((g) => g <= real && at(snap, snap.decodeWaitMs, i, g) < 100));
      // 40 capacities about 700 apart in 26 groups: at best pairs, so no pod loses more than 710 tokens.
      expect(real - held).toBeLessThanOrEqual(710);
      expect(at(snap, snap.decodeWaitMs, i, held)).toBeLessThan(100);
      expect(at(snap, snap.decodeWaitMs, i, held + 0.5)).toBe(MAX_PREDICTION_MS);
    }
    expect(logger.lines.filter((l) => l.fields?.cause === "capacities_grouped")).toHaveLength(1);
  });

  it("gridWithCapacities: knots at each capacity and just above it, within the points allowed", () => {
    const base = Float64Array.from([16, 256, 4096, 32_768]);
    expect(gridWithCapacities(base, [400_000, 32_768, 0]).grid).toBe(base);
    const { grid, roundedTo } = gridWithCapacities(base, [10_000, 10_000, 4096, 50_000]);
    expect([...grid]).toEqual([16, 256, 4096, 4096.000000000001, 10_000, 10_000.000000000002, 32_768]);
    expect(grid[3]).toBeGreaterThan(4096);
    expect(roundedTo.size).toBe(0);
    // Room for two pairs: 100 and 110 share one.
    const tight = gridWithCapacities(base, [110, 100, 5000], 8);
    expect([...tight.roundedTo]).toEqual([[110, 100]]);
    expect([...tight.grid].filter((x) => !base.includes(x)).map(Math.round)).toEqual([100, 100, 5000, 5000]);
    expect(gridWithCapacities(base, [5000], 5)).toMatchObject({ grid: base, unplaced: 1 });
  });
});
