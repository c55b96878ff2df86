// Whole simulation runs: the same seed gives the same run, every request is accounted for, and
// policies see a pod's state only through scrapes taken every interval and delivered a delay later;
// TTFT attainment counts first tokens, a run that scores nothing reports no attainment, and a request
// no decode pod can hold fails without holding up the pod.

import { describe, expect, it } from "vitest";
import type { PodMetrics } from "../src/pods/types.js";
import { simulate, summarize, type RequestRecord } from "../src/sim/run.js";
import { parseTrace, traceRateRps } from "../src/sim/workload.js";
import { tinyScenario } from "./fixtures/sim-scenario.js";

const fingerprint = (records: RequestRecord[]) =>
  records.map((r) => [r.req.arrivalMs, r.req.inputTokens, r.req.outputTokens, r.req.sloLevel, r.prefill, r.decode, r.ttftMs, r.tpotMs]);

describe("simulation runs", () => {
  it.each(["random", "queue-kv", "seed-pd-slo", "headroom", "headroom-online"])("%s: the same seed gives the same run", (policy) => {
    const scenario = tinyScenario({ durationMs: 4000 });
    const a = simulate({ scenario, policy, rateRps: 30 });
    const b = simulate({ scenario, policy, rateRps: 30 });
    expect(fingerprint(b.records)).toEqual(fingerprint(a.records));
    expect(b.policyStats).toEqual(a.policyStats);
    const other = simulate({ scenario: tinyScenario({ durationMs: 4000, seed: 8 }), policy, rateRps: 30 });
    expect(fingerprint(other.records)).not.toEqual(fingerprint(a.records));
  });

  it("accounts for every request: finished with ordered timestamps, or unfinished when the drain ends", () => {
    // Twice what two prefill pods can do, and only 2 s to drain: a backlog is left.
    const scenario = tinyScenario({ durationMs: 5000, drainMs: 2000 });
    const { records } = simulate({ scenario, policy: "headroom", rateRps: 120 });
    const s = summarize(records, 0);
    expect(s.requests).toBe(records.length);
    expect(s.unfinished).toBeGreaterThan(0);
    expect(s.completed + s.unfinished + s.unrouted + s.failed).toBe(s.requests);
    expect(s.unrouted).toBe(0);
    expect(s.failed).toBe(0);
    for (const r of records) {
      expect(r.routed).toBe(true);
      const j = r.job!;
      expect(j.dispatchMs).toBe(r.req.arrivalMs);
      if (!r.completed) {
        expect(j.doneMs).toBeUndefined();
        continue;
      }
      const local = j.prefill < 0;
      const steps = local
        ? [j.dispatchMs, j.admittedMs!, j.prefillStartMs!, j.prefillDoneMs!, j.firstTokenMs!, j.doneMs!]
        : [j.dispatchMs, j.prefillStartMs!, j.prefillDoneMs!, j.admittedMs!, j.firstTokenMs!, j.doneMs!];
      for (let i = 1; i < steps.length; i++) expect(steps[i]).toBeGreaterThanOrEqual(steps[i - 1]);
      expect(r.ttftMs).toBe(j.firstTokenMs! - r.req.arrivalMs);
    }
  });

  it("delivers each pod's state as it was scrape.delayMs before, every scrape.intervalMs", () => {
    // A trace replayed at its own rate (times relative to its first row): a short request at 0, then
    // a at 1,015 ms and b at 1,035 ms, each a 4,000-token prompt (about 107 ms of prefill).
    // Round-robin puts a on p1 and b on p0.
    const trace = parseTrace("arrivalMs,inputTokens,outputTokens\n0,16,1\n1015,4000,2\n1035,4000,2\n");
    const scenario = tinyScenario({ workload: { arrivals: { process: "trace", file: "unused.csv" } } });
    const seen: { pod: number; m: PodMetrics; at: number }[] = [];
    simulate({ scenario, policy: "round-robin", rateRps: traceRateRps(trace), trace, onScrape: (pod, m, at) => seen.push({ pod, m, at }) });
    for (const s of seen) expect(s.m.scrapedAtMs).toBe(s.at === 0 ? 0 : s.at - 20);
    const deliveries = [...new Set(seen.map((s) => s.at))];
    expect(deliveries.slice(0, 4)).toEqual([0, 50, 150, 250]);
    const at = (time: number, pod: number) => seen.find((s) => s.at === time && s.pod === pod)!.m;
    // State at 930 ms: nothing has arrived.
    expect(at(950, 0).running + at(950, 1).running).toBe(0);
    // State at 1,030 ms: a is prefilling on p1; b (1,035 ms) is not there yet, though it arrived
    // before this scrape was delivered.
    expect(at(1050, 1).running).toBe(1);
    expect(at(1050, 0).running).toBe(0);
    // State at 1,130 ms: a is done (1,015 + 107 ms) and b is still prefilling on p0.
    expect(at(1150, 1).running).toBe(0);
    expect(at(1150, 0).running).toBe(1);
  });

  it("counts a request whose first token came in time as meeting TTFT, though it did not finish", () => {
    // Two 2,000-token outputs (about 20 s of decode each) and 2 s to drain: neither finishes.
    const trace = parseTrace("arrivalMs,inputTokens,outputTokens,sloLevel\n0,100,2000,low\n10,100,2000,low\n");
    const scenario = tinyScenario({ durationMs: 1000, warmupMs: 0, drainMs: 2000, workload: { arrivals: { process: "trace", file: "unused.csv" } } });
    const { records } = simulate({ scenario, policy: "round-robin", rateRps: traceRateRps(trace), trace });
    for (const r of records) {
      expect(r.completed).toBe(false);
      expect(r.job!.firstTokenMs! - r.req.arrivalMs).toBeLessThan(r.req.sloTtftMs);
    }
    const s = summarize(records, 0);
    expect(s).toMatchObject({ requests: 2, unfinished: 2, ttftAttainment: 1, tpotAttainment: 0, attainment: 0 });
  });

  it("reports no attainment (NaN), not 0 %, for a run that scored no request", () => {
    // Both rows arrive before warmupMs (1,000 ms).
    const trace = parseTrace("arrivalMs,inputTokens,outputTokens\n0,100,4\n500,100,4\n");
    const scenario = tinyScenario({ workload: { arrivals: { process: "trace", file: "unused.csv" } } });
    const { records } = simulate({ scenario, policy: "round-robin", rateRps: traceRateRps(trace), trace });
    expect(records.every((r) => r.completed)).toBe(true);
    const s = summarize(records, scenario.warmupMs);
    expect(s.requests).toBe(0);
    expect(s.attainment).toBeNaN();
    expect(s.ttftAttainment).toBeNaN();
    expect(s.tpotAttainment).toBeNaN();
    expect(s.byLevel).toEqual({});
  });

  it("fails a request larger than its decode pod's KV and keeps serving the pod's later requests", () => {
    // d0 and d1 hold 3,000 tokens each; r0 needs 4,004. Round-robin sends r0, r2, r4, ... to d0.
    const rows = ["arrivalMs,inputTokens,outputTokens", "0,4000,4", ...Array.from({ length: 9 }, (_, i) => `${(i + 1) * 200},100,4`)];
    const trace = parseTrace(rows.join("\n"));
    const scenario = tinyScenario({
      warmupMs: 0,
      drainMs: 20_000,
      cluster: { pods: [{ name: "p", count: 2, role: "prefill" }, { name: "d", count: 2, role: "decode", kvCapacityTokens: 3000 }] },
      workload: { arrivals: { process: "trace", file: "unused.csv" } },
    });
    const { records, endMs } = simulate({ scenario, policy: "round-robin", rateRps: traceRateRps(trace), trace });
    expect(records[0]).toMatchObject({ routed: true, failed: true, completed: false, decode: 2 });
    expect(records.slice(1).every((r) => r.completed)).toBe(true);
    expect(records.filter((r) => r.decode === 2 && r.completed).length).toBeGreaterThan(0);
    expect(endMs).toBeLessThan(3000);
    const s = summarize(records, 0);
    expect(s).toMatchObject({ requests: 10, completed: 9, failed: 1, unfinished: 0, unrouted: 0 });
    // headroom is told of a failure (a failed report), so its in-flight accounting lets the request go.
    const viaHeadroom = summarize(simulate({ scenario, policy: "headroom", rateRps: traceRateRps(trace), trace }).records, 0);
    expect(viaHeadroom.completed + viaHeadroom.failed).toBe(10);
  });
});
