// In-flight load (SPEC.md §5): a pick loads its pods at once; a report, a scrape late enough to count
// it, or expiry releases it; unknown reports are counted and ignored.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { InflightLoad, type InflightPick } from "../src/pods/inflight.js";

function setup() {
  const clock = new ManualClock(0);
  const inflight = new InflightLoad({ clock, reflectDelayMs: 200, ttlFactor: 2 });
  return { clock, inflight };
}

function pick(requestId: string, over: Partial<InflightPick> = {}): InflightPick {
  return {
    requestId,
    pool: "p",
    prefill: "P:1",
    decode: "D:1",
    prefillTokens: 1000,
    prefillComputeMs: 30,
    kvTokens: 1100,
    prefillDoneMs: 50,
    decodeDoneMs: 1000,
    ...over,
  };
}

describe("loading and releasing", () => {
  it("a remote pick queues prefill on its prefill pod and a sequence on its decode pod", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("r1"));
    expect(inflight.podLoad("p:1")).toEqual({ prefillRequests: 1, prefillTokens: 1000, prefillMsAhead: 30, decodeRequests: 0, decodeTokens: 0 });
    expect(inflight.podLoad("D:1")).toEqual({ prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, decodeRequests: 1, decodeTokens: 1100 });
    // Prefill work ahead shrinks as its predicted completion nears, and ends there.
    clock.advance(40);
    expect(inflight.podLoad("P:1").prefillMsAhead).toBe(10);
    clock.advance(10);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(0);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
  });

  it("a local pick puts both its prefill and its sequence on the decode pod", () => {
    const { inflight } = setup();
    inflight.add(pick("r1", { prefill: undefined }));
    expect(inflight.podLoad("D:1")).toMatchObject({ prefillRequests: 1, prefillMsAhead: 30, decodeRequests: 1 });
  });

  it("a report releases the request everywhere; an unknown or repeated report is counted", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    expect(inflight.report("r1")?.requestId).toBe("r1");
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.report("r1")).toBeUndefined();
    expect(inflight.report("nope")).toBeUndefined();
    expect(inflight.counters).toMatchObject({ released: { report: 1, scrape: 0, expired: 0 }, unknownReports: 2 });
  });

  it("a scrape releases only picks dispatched reflectDelayMs before it, pod by pod, and the report still finds them", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("early", { prefillDoneMs: 10_000 }));
    clock.advance(150);
    inflight.add(pick("late", { prefillDoneMs: 10_000 }));
    clock.advance(60);
    inflight.onScrape("D:1", 205);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(2);
    inflight.onScrape("P:1", 205);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(1);
    expect(inflight.counters.released.scrape).toBe(1);
    expect(inflight.report("early")).toBeDefined();
    expect(inflight.counters.unknownReports).toBe(0);
    expect(inflight.counters.released.report).toBe(0);
  });

  it("expires entries older than ttlFactor x their predicted duration, counting those that still held load", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("held"));
    inflight.add(pick("reconciled", { decode: "D:2", prefill: "P:2" }));
    clock.advance(300);
    inflight.onScrape("D:2", 300);
    inflight.onScrape("P:2", 300);
    clock.advance(1700);
    expect(inflight.expire()).toBe(0);
    clock.advance(1);
    expect(inflight.expire()).toBe(1);
    expect(inflight.size).toBe(0);
    expect(inflight.counters.released.expired).toBe(1);
  });

  it("a repeated request id replaces the earlier pick (a gateway retry) and is counted", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    inflight.add(pick("r1", { decode: "D:2" }));
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.podLoad("D:2").decodeRequests).toBe(1);
    expect(inflight.counters.duplicatePicks).toBe(1);
  });

  it("a pod that leaves stops carrying load but its requests' reports are still recognised", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    inflight.forgetPod("D:1");
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(1);
    expect(inflight.report("r1")).toBeDefined();
  });
});
