// The pod registry: sources merged by address with precedence, drain, deletions, and freshness from
// scrape outcomes and the clock (SPEC.md §5).

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { normalizeAddress } from "../src/pods/address.js";
import { failOpen, FAILURES_BEFORE_FAILING, PodRegistry } from "../src/pods/registry.js";
import type { PodMetrics } from "../src/pods/types.js";

function setup() {
  const clock = new ManualClock(10_000);
  const registry = new PodRegistry({ clock, staleAfterMs: 1000 });
  const changes: string[][] = [];
  registry.onChange((pools) => changes.push([...pools].sort()));
  return { clock, registry, changes };
}

const metrics = (scrapedAtMs: number, waiting = 0): PodMetrics => ({ scrapedAtMs, waiting, running: 1, kvUsage: 0.5 });

describe("sources", () => {
  it("merges by address: push over Kubernetes over static, field by field", () => {
    const { registry } = setup();
    registry.replacePool("static", "high", [{ address: "10.0.0.1:8000", pool: "high", role: "both", rack: "r1", tp: 2 }]);
    registry.replacePool("kubernetes", "high", [{ address: "10.0.0.1:8000", pool: "high", role: "decode", node: "n1" }]);
    registry.upsert("push", { address: "10.0.0.1:8000", pool: "high", role: "prefill", draining: true });
    const pod = registry.get("10.0.0.1:8000")!;
    expect(pod.spec).toEqual({ address: "10.0.0.1:8000", pool: "high", role: "prefill", rack: "r1", tp: 2, node: "n1", draining: true });
    expect(pod.sources).toEqual(["static", "kubernetes", "push"]);
  });

  it("every spelling of an address is one pod: host case, leading zeros in the port, IPv6 forms", () => {
    const { registry } = setup();
    const spellings = [
      ["Pod-A.example:8000", "pod-a.example:08000"],
      ["10.0.0.3:8000", "10.0.0.3:008000"],
      ["[::1]:8000", "[0:0:0:0:0:0:0:1]:8000"],
      ["[2001:DB8::1]:9000", "[2001:db8:0:0:0:0:0:1]:9000"],
    ];
    for (const [first, second] of spellings) {
      registry.upsert("push", { address: first, pool: "p", role: "both" });
      registry.upsert("push", { address: second, pool: "p", role: "both", draining: true });
      expect(registry.get(first)).toBe(registry.get(second));
      expect(registry.get(first)!.spec.draining).toBe(true);
    }
    expect(registry.podsOf("p")).toHaveLength(spellings.length);
    // Without a port, an IPv6 literal's last colon is its own.
    expect(normalizeAddress("[0:0:0:0:0:0:0:1]")).toBe("[::1]");
    expect(normalizeAddress("Pod-A.example")).toBe("pod-a.example");
  });

  it("lists a pool's pods in address order and reports which pools changed", () => {
    const { registry, changes } = setup();
    registry.replacePool("static", "high", [
      { address: "b:1", pool: "high", role: "decode" },
      { address: "a:1", pool: "high", role: "prefill" },
    ]);
    registry.upsert("push", { address: "c:1", pool: "low", role: "both" });
    expect(registry.podsOf("high").map((p) => p.spec.address)).toEqual(["a:1", "b:1"]);
    expect(changes).toEqual([["high"], ["low"]]);
    // The same spec again changes nothing and says nothing.
    registry.upsert("push", { address: "c:1", pool: "low", role: "both" });
    expect(changes).toHaveLength(2);
    // Moving a pod between pools touches both.
    registry.upsert("push", { address: "c:1", pool: "high", role: "both" });
    expect(changes[2]).toEqual(["high", "low"]);
  });

  it("a change is reported even when an unchanged pod of the same pool follows it (a reload that drains one pod)", () => {
    const { registry, changes } = setup();
    const pods = [
      { address: "a:1", pool: "m", role: "decode" as const },
      { address: "b:1", pool: "m", role: "decode" as const },
    ];
    registry.replacePools("static", ["m"], pods);
    changes.length = 0;
    registry.replacePools("static", ["m"], [{ ...pods[0], draining: true }, pods[1]]);
    expect(registry.get("a:1")!.spec.draining).toBe(true);
    expect(changes).toEqual([["m"]]);
  });

  it("a Kubernetes resync replaces that pool's discovered set and leaves static pods alone", () => {
    const { registry } = setup();
    registry.replacePool("static", "p", [{ address: "s:1", pool: "p", role: "both" }]);
    registry.replacePool("kubernetes", "p", [{ address: "k1:1", pool: "p", role: "decode" }, { address: "k2:1", pool: "p", role: "prefill" }]);
    registry.replacePool("kubernetes", "p", [{ address: "k2:1", pool: "p", role: "prefill" }]);
    expect(registry.podsOf("p").map((p) => p.spec.address)).toEqual(["k2:1", "s:1"]);
  });

  it("an address reused by another pool's pod stays with it while the old pool's set still names it, and after it drops it", () => {
    const { registry } = setup();
    const removed: string[] = [];
    registry.onRemove((address) => removed.push(address));
    const a1 = { address: "10.1.0.7:8000", pool: "a", role: "decode" as const };
    const a2 = { address: "10.1.0.8:8000", pool: "a", role: "prefill" as const };
    registry.replacePool("kubernetes", "a", [a1, a2]);
    // The IP is freed in pool a and given to a pod of pool b, whose watch tells first.
    registry.replacePool("kubernetes", "b", [{ address: "10.1.0.7:8000", pool: "b", role: "both" }]);
    expect(registry.get("10.1.0.7:8000")!.spec.pool).toBe("b");
    // Another pod of a changes: a's watch sends its whole set, the old pod still in it.
    registry.replacePool("kubernetes", "a", [a1, { ...a2, draining: true }]);
    expect(registry.get("10.1.0.7:8000")!.spec).toMatchObject({ pool: "b", role: "both" });
    // a's watch learns of the deletion.
    registry.replacePool("kubernetes", "a", [{ ...a2, draining: true }]);
    expect(registry.get("10.1.0.7:8000")!.spec).toMatchObject({ pool: "b", role: "both" });
    expect(registry.podsOf("b").map((p) => p.spec.address)).toEqual(["10.1.0.7:8000"]);
    expect(removed).toEqual([]);
  });

  it("tells removal listeners which pods left, once each", () => {
    const { registry } = setup();
    const removed: string[] = [];
    registry.onRemove((address) => removed.push(address));
    registry.replacePool("kubernetes", "p", [{ address: "K1:1", pool: "p", role: "decode" }, { address: "k2:1", pool: "p", role: "prefill" }]);
    registry.replacePool("kubernetes", "p", [{ address: "k2:1", pool: "p", role: "prefill" }]);
    registry.remove("push", "k2:1");
    registry.remove("push", "k2:1");
    expect(removed).toEqual(["K1:1", "k2:1"]);
  });

  it("a pushed deletion hides a static pod until it is pushed again or tombstones are cleared", () => {
    const { registry } = setup();
    registry.replacePool("static", "p", [{ address: "s:1", pool: "p", role: "both" }]);
    expect(registry.remove("push", "S:1")).toBe(true);
    expect(registry.get("s:1")).toBeUndefined();
    expect(registry.remove("push", "s:1")).toBe(false);
    registry.clearTombstones();
    expect(registry.get("s:1")?.spec.role).toBe("both");
    registry.remove("push", "s:1");
    registry.upsert("push", { address: "s:1", pool: "p", role: "decode" });
    expect(registry.get("s:1")?.spec.role).toBe("decode");
  });
});

describe("freshness", () => {
  it("an unscraped pod is always a candidate unless draining", () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "u:1", pool: "p", role: "both" });
    clock.advance(60_000);
    expect(registry.status(registry.get("u:1")!)).toEqual({ freshness: "unscraped", eligible: true, excludedBecause: undefined });
    registry.upsert("push", { address: "u:1", pool: "p", role: "both", draining: true });
    expect(registry.status(registry.get("u:1")!)).toMatchObject({ eligible: false, excludedBecause: "draining" });
  });

  it("a scraped pod waits for its first scrape, goes stale without good scrapes, and returns when one arrives", () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "m:1", pool: "p", role: "both", metricsUrl: "http://127.0.0.1:9/metrics" });
    const pod = () => registry.get("m:1")!;
    expect(registry.status(pod())).toMatchObject({ freshness: "pending", eligible: false });
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs()) });
    expect(registry.status(pod())).toMatchObject({ freshness: "fresh", eligible: true });
    clock.advance(1001);
    expect(registry.status(pod())).toMatchObject({ freshness: "stale", eligible: false });
    expect(registry.status(pod()).excludedBecause).toContain("no good scrape for 1001 ms");
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs()) });
    expect(registry.status(pod()).eligible).toBe(true);
  });

  it(`${FAILURES_BEFORE_FAILING} failed scrapes in a row make a pod failing, with the cause; a good one restores it`, () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "m:1", pool: "p", role: "both", metricsUrl: "http://127.0.0.1:9/metrics" });
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs()) });
    for (let i = 0; i < FAILURES_BEFORE_FAILING; i++) {
      expect(registry.status(registry.get("m:1")!).eligible).toBe(true);
      registry.recordScrape("m:1", { ok: false, cause: "timeout", message: "no answer in 80 ms" });
    }
    const status = registry.status(registry.get("m:1")!);
    expect(status).toMatchObject({ freshness: "failing", eligible: false });
    expect(status.excludedBecause).toContain("timeout: no answer in 80 ms");
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs()) });
    expect(registry.status(registry.get("m:1")!).freshness).toBe("fresh");
  });

  it("ignores an older scrape arriving after a newer one, and scrapes of unknown pods", () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "m:1", pool: "p", role: "both", metricsUrl: "http://127.0.0.1:9/metrics" });
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs(), 7) });
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs() - 50, 1) });
    expect(registry.get("m:1")!.metrics?.waiting).toBe(7);
    registry.recordScrape("nobody:1", { ok: true, metrics: metrics(clock.nowMs()) });
    expect(registry.get("nobody:1")).toBeUndefined();
  });

  it("a pod that moves to another pool in one replacement keeps its scrapes, whichever pool comes first", () => {
    for (const order of [["a", "b"], ["b", "a"]]) {
      const { registry, clock } = setup();
      const spec = (pool: string) => ({ address: "m:1", pool, role: "both" as const, metricsUrl: "http://127.0.0.1:9/metrics" });
      registry.replacePools("static", order, [spec("a")]);
      registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs(), 7) });
      const addedAtMs = registry.get("m:1")!.addedAtMs;
      clock.advance(50);
      const removed: string[] = [];
      registry.onRemove((address) => removed.push(address));
      registry.replacePools("static", order, [spec("b")]);
      expect(registry.get("m:1")).toMatchObject({ spec: { pool: "b" }, addedAtMs, metrics: { waiting: 7 } });
      expect(removed).toEqual([]);
    }
  });

  it("a new metrics URL starts over: the old numbers belonged to another server", () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "m:1", pool: "p", role: "both", metricsUrl: "http://127.0.0.1:9/metrics" });
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs(), 7) });
    registry.upsert("push", { address: "m:1", pool: "p", role: "both", metricsUrl: "http://127.0.0.1:10/metrics" });
    expect(registry.get("m:1")!.metrics).toBeUndefined();
    expect(registry.status(registry.get("m:1")!).freshness).toBe("pending");
    // A scrape of the old URL that was under way when it changed is not the new server's.
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs(), 100) }, "http://127.0.0.1:9/metrics");
    expect(registry.get("m:1")!.metrics).toBeUndefined();
    registry.recordScrape("m:1", { ok: false, cause: "http", message: "503" }, "http://127.0.0.1:9/metrics");
    expect(registry.get("m:1")!.consecutiveFailures).toBe(0);
    registry.recordScrape("m:1", { ok: true, metrics: metrics(clock.nowMs(), 2) }, "http://127.0.0.1:10/metrics");
    expect(registry.get("m:1")!.metrics?.waiting).toBe(2);
  });
});

describe("fail-open", () => {
  const scraped = (registry: PodRegistry, address: string, extra: Partial<{ draining: boolean }> = {}) =>
    registry.upsert("push", { address, pool: "p", role: "both", metricsUrl: `http://${address}/metrics`, ...extra });
  const fail = (registry: PodRegistry, address: string) => {
    for (let i = 0; i < FAILURES_BEFORE_FAILING; i++) registry.recordScrape(address, { ok: false, cause: "timeout", message: "slow" });
  };

  it("revives the pods of a pool out only for their scrapes, on their last metrics, when none is a candidate", () => {
    const { registry, clock } = setup();
    for (const a of ["a:1", "b:1", "c:1", "d:1"]) scraped(registry, a, a === "c:1" ? { draining: true } : {});
    for (const a of ["a:1", "b:1", "c:1"]) registry.recordScrape(a, { ok: true, metrics: metrics(clock.nowMs()) });
    // d:1 never had a good scrape; c:1 drains.
    fail(registry, "a:1");
    clock.advance(1500);
    const pods = registry.podsOf("p");
    const statuses = pods.map((pod) => registry.status(pod));
    expect(statuses.every((s) => !s.eligible)).toBe(true);
    const revived = failOpen(pods, statuses)!;
    const by = Object.fromEntries(pods.map((pod, i) => [pod.spec.address, revived[i]]));
    expect(by["a:1"]).toEqual({ freshness: "failing", eligible: true, failOpen: true });
    expect(by["b:1"]).toEqual({ freshness: "stale", eligible: true, failOpen: true });
    expect(by["c:1"].eligible).toBe(false);
    expect(by["d:1"].eligible).toBe(false);
  });

  it("revives them too when only unscraped prefill pods are candidates: no pair can be made without a decode pod", () => {
    const { registry, clock } = setup();
    // An unscraped prefill pod is always a candidate; the decode pod's scrapes have gone stale.
    registry.upsert("push", { address: "p:1", pool: "p", role: "prefill" });
    registry.upsert("push", { address: "d:1", pool: "p", role: "decode", metricsUrl: "http://d:1/metrics" });
    registry.recordScrape("d:1", { ok: true, metrics: metrics(clock.nowMs()) });
    clock.advance(1500);
    const pods = registry.podsOf("p");
    const revived = failOpen(pods, pods.map((pod) => registry.status(pod)))!;
    expect(revived.map((s) => [s.eligible, s.failOpen])).toEqual([
      [true, true],
      [true, undefined],
    ]);
  });

  it("changes nothing while one pod of the pool is a candidate, or when no pod has ever been scraped", () => {
    const { registry, clock } = setup();
    scraped(registry, "a:1");
    scraped(registry, "b:1");
    expect(failOpen(registry.podsOf("p"), registry.podsOf("p").map((pod) => registry.status(pod)))).toBeNull();
    registry.recordScrape("a:1", { ok: true, metrics: metrics(clock.nowMs()) });
    fail(registry, "b:1");
    const pods = registry.podsOf("p");
    expect(failOpen(pods, pods.map((pod) => registry.status(pod)))).toBeNull();
  });

  it("changes nothing when a prefill pod's scrapes are fresh and the decode pods fail theirs: the scraping works, they are in trouble", () => {
    const { registry, clock } = setup();
    registry.upsert("push", { address: "p:1", pool: "p", role: "prefill", metricsUrl: "http://p:1/metrics" });
    registry.upsert("push", { address: "d:1", pool: "p", role: "decode", metricsUrl: "http://d:1/metrics" });
    for (const a of ["p:1", "d:1"]) registry.recordScrape(a, { ok: true, metrics: metrics(clock.nowMs()) });
    fail(registry, "d:1");
    const pods = registry.podsOf("p");
    expect(pods.map((pod) => registry.status(pod).eligible)).toEqual([false, true]);
    expect(failOpen(pods, pods.map((pod) => registry.status(pod)))).toBeNull();
  });
});
