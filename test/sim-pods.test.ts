// The simulated pods against numbers worked out by hand from the shipped profile: a lone request's TTFT
// and TPOT, a local prefill, prefill batching under the token budget (a batch costs its prompts one
// after another, so a saturated prefill pod serves the nominal capacity), continuous batching, KV
// admission that holds a request back until another one frees its KV, and a request no KV can hold.

import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { loadProfiles, nominalCapacity } from "../src/sim/capacity.js";
import { DecodePod, PrefillPod, SimCluster, type Job, type Placement } from "../src/sim/pods.js";
import type { Scenario } from "../src/sim/scenario.js";
import { generateWorkload, type SimRequest } from "../src/sim/workload.js";
import { benchScenario, tinyScenario } from "./fixtures/sim-scenario.js";

// Batch-1 prefill rows of deploy/profiles/h100_llama3_8b_bf16.csv around 1,000 and 3,000 tokens.
const PREFILL_512 = 13.928;
const PREFILL_1024 = 25.843;
const PREFILL_2048 = 52.713;
const PREFILL_4096 = 109.952;
const PREFILL_8192 = 232.359;
const KV_BYTES_PER_TOKEN = 131_072;
const RACK_GBPS = 50;
const OVERHEAD_MS = 1;

function between(x: number, x0: number, y0: number, x1: number, y1: number): number {
  return y0 + ((x - x0) * (y1 - y0)) / (x1 - x0);
}

function setup(scenario: Scenario = tinyScenario()) {
  const clock = new ManualClock(0);
  const profiles = loadProfiles(scenario);
  const done: Job[] = [];
  const sim = new SimCluster({ scenario, profiles, clock, onComplete: (job) => done.push(job) });
  const decode = profiles.get(scenario.cluster.profile)!.decode;
  let n = 0;
  const send = (inputTokens: number, outputTokens: number, placement: Placement): Job => {
    const req: SimRequest = { id: `r${n}`, index: n++, arrivalMs: clock.nowMs(), inputTokens, outputTokens, sloLevel: "low", sloTtftMs: 2000, sloTpotMs: 100, seed: 1 };
    return sim.dispatch(req, placement);
  };
  const run = () => {
    while (sim.pending > 0) clock.advanceTo(clock.nextDueMs());
  };
  return { clock, sim, done, send, run, decode };
}

const ttft = (j: Job) => j.firstTokenMs! - j.dispatchMs;
const tpot = (j: Job) => (j.doneMs! - j.firstTokenMs!) / (j.req.outputTokens - 1);

describe("simulated pods", () => {
  it("gives a lone remote request the profile's prefill, the link's transfer and one decode step as TTFT", () => {
    const { send, run, decode } = setup();
    // Pods are p0, p1 (prefill) and d0, d1 (decode), all in rack r0 on nodes of their own.
    const job = send(1000, 100, { prefill: 0, decode: 2 });
    run();
    const prefillMs = between(1000, 512, PREFILL_512, 1024, PREFILL_1024);
    const transferMs = OVERHEAD_MS + (1000 * KV_BYTES_PER_TOKEN) / (RACK_GBPS * 1e6);
    const firstStepMs = decode.c0 + decode.perSequenceMs * 1 + decode.perKvTokenMs * 1000;
    expect(job.prefillDoneMs! - job.dispatchMs).toBeCloseTo(prefillMs, 9);
    expect(transferMs).toBeCloseTo(3.62144, 9);
    expect(ttft(job)).toBeCloseTo(prefillMs + transferMs + firstStepMs, 9);
    // Tokens 2..100 come one step each, at context 1,001..1,099: a mean context of 1,050.
    expect(tpot(job)).toBeCloseTo(decode.c0 + decode.perSequenceMs + decode.perKvTokenMs * 1050, 9);
  });

  it("computes a local prefill inside the decode pod's iteration", () => {
    const { send, run, decode } = setup();
    const job = send(200, 10, { prefill: -1, decode: 3 });
    run();
    // 200 tokens lies between the 128- and 256-token rows.
    expect(ttft(job)).toBeCloseTo(between(200, 128, 7.491, 256, 8.877), 9);
    expect(job.transferMs).toBe(0);
    expect(tpot(job)).toBeCloseTo(decode.c0 + decode.perSequenceMs + decode.perKvTokenMs * 205, 9);
  });

  it("batches queued prompts up to the token budget and times a batch as its prompts one after another", () => {
    const { clock, send, run } = setup();
    const a = send(3000, 2, { prefill: 0, decode: 2 });
    const b = send(3000, 2, { prefill: 0, decode: 2 });
    const c = send(3000, 2, { prefill: 0, decode: 2 });
    expect(clock.nowMs()).toBe(0);
    run();
    // a alone (b arrived while a ran), then b + c together (6,000 tokens <= 8,192), costing two
    // 3,000-token prompts, not one 6,000-token prompt (whose attention spans both).
    const t3000 = between(3000, 2048, PREFILL_2048, 4096, PREFILL_4096);
    const t6000 = between(6000, 4096, PREFILL_4096, 8192, PREFILL_8192);
    expect(2 * t3000).toBeLessThan(t6000);
    expect(a.prefillDoneMs).toBeCloseTo(t3000, 9);
    expect(b.prefillStartMs).toBeCloseTo(t3000, 9);
    expect(b.prefillDoneMs).toBeCloseTo(3 * t3000, 9);
    expect(c.prefillDoneMs).toBeCloseTo(3 * t3000, 9);
  });

  it("times local prefills computed in one decode iteration as their prompts one after another", () => {
    const { send, run, decode } = setup();
    // x prefills alone; a and b arrive during its iteration and are prefilled together in the next
    // one, beside x's first decode step (batch 1, 200 prompt tokens + 1 generated).
    const x = send(200, 10, { prefill: -1, decode: 2 });
    const a = send(3000, 2, { prefill: -1, decode: 2 });
    const b = send(3000, 2, { prefill: -1, decode: 2 });
    run();
    expect(a.prefillStartMs).toBe(x.firstTokenMs);
    expect(b.firstTokenMs).toBe(a.firstTokenMs);
    const t3000 = between(3000, 2048, PREFILL_2048, 4096, PREFILL_4096);
    const step = decode.c0 + decode.perSequenceMs + decode.perKvTokenMs * 201;
    expect(a.firstTokenMs! - x.firstTokenMs!).toBeCloseTo(step + 2 * t3000, 9);
  });

  it("sustains, saturated, the per-pod prefill rate nominal capacity assumes", () => {
    const scenario = benchScenario("default");
    const profiles = loadProfiles(scenario);
    const perPodRps = nominalCapacity(scenario, profiles).pods.find((p) => p.role === "prefill")!.rps;
    // 20,000 of the scenario's prompts queued at once on one pod, batched under its token budget.
    const requests = generateWorkload(scenario, 200).slice(0, 20_000);
    expect(requests).toHaveLength(20_000);
    const spec = scenario.cluster.pods.find((p) => p.role === "prefill")!;
    const clock = new ManualClock(0);
    let served = 0;
    let lastMs = 0;
    const pod = new PrefillPod({ spec, profile: profiles.get(spec.profile)!, speedup: 1, kvCapacityTokens: 466_944 }, scenario.cluster.prefillTokenBudget, clock, () => {
      served++;
      lastMs = clock.nowMs();
    });
    for (const req of requests) pod.enqueue({ req, prefill: 0, decode: 4, dispatchMs: 0, transferMs: 0 });
    while (clock.nextDueMs() < Infinity) clock.advanceTo(clock.nextDueMs());
    expect(served).toBe(requests.length);
    const rps = (1000 * served) / lastMs;
    // The sample of 20,000 prompts against the capacity's 200,000 draws: about 0.7 % standard error.
    expect(Math.abs(rps / perPodRps - 1)).toBeLessThan(0.02);
  });

  it("batches decoding continuously: requests that become ready during an iteration join the next one", () => {
    const { send, run, decode } = setup();
    const x = send(100, 1000, { prefill: -1, decode: 2 });
    // a and b finish prefill while x decodes; they are admitted together at the next iteration
    // boundary, transfer together, and join together one iteration later.
    const a = send(200, 11, { prefill: 0, decode: 2 });
    const b = send(200, 11, { prefill: 1, decode: 2 });
    run();
    expect(b.admittedMs).toBe(a.admittedMs);
    expect(b.firstTokenMs).toBe(a.firstTokenMs);
    expect(x.firstTokenMs).toBeCloseTo(7.491, 9);
    // x had 3 tokens when a and b joined; over a's 10 later steps the batch is 3 and the KV held is
    // 500 prompt tokens + 6, 9, ..., 33 generated ones: 519.5 on average.
    expect(tpot(a)).toBeCloseTo(decode.c0 + decode.perSequenceMs * 3 + decode.perKvTokenMs * 519.5, 9);
  });

  it("holds a request whose KV does not fit until a running one frees its KV", () => {
    const scenario = tinyScenario({
      cluster: {
        pods: [
          { name: "p", count: 2, role: "prefill" },
          { name: "d", count: 2, role: "decode", kvCapacityTokens: 2500 },
        ],
      },
    });
    const { clock, sim, send, run } = setup(scenario);
    const first = send(1000, 1000, { prefill: -1, decode: 2 });
    const second = send(1000, 1000, { prefill: -1, decode: 2 });
    clock.advance(1);
    expect(first.admittedMs).toBe(0);
    expect(second.admittedMs).toBeUndefined();
    expect(sim.gauges(2)).toMatchObject({ waiting: 1, running: 1, kvUsage: 2000 / 2500, kvCapacityTokens: 2500 });
    run();
    expect(second.admittedMs).toBe(first.doneMs);
    expect(second.firstTokenMs!).toBeGreaterThan(first.doneMs!);
  });

  it("fails at dispatch a request larger than its decode pod's KV, and the pod serves the next one", () => {
    const scenario = tinyScenario({
      cluster: {
        pods: [
          { name: "p", count: 2, role: "prefill" },
          { name: "d", count: 2, role: "decode", kvCapacityTokens: 3000 },
        ],
      },
    });
    const { sim, send, run, done } = setup(scenario);
    const big = send(2990, 11, { prefill: 0, decode: 2 });
    const next = send(100, 4, { prefill: 1, decode: 2 });
    expect(big.failedMs).toBe(0);
    expect(big.prefillStartMs).toBeUndefined();
    expect(sim.pending).toBe(1);
    run();
    expect(done).toEqual([next]);
    expect(next.doneMs).toBeDefined();
    // Handed one directly (as the pod simulator does), the decode pod refuses it rather than queue it.
    const profiles = loadProfiles(scenario);
    const spec = scenario.cluster.pods[2];
    const pod = new DecodePod({ spec, profile: profiles.get(spec.profile)!, speedup: 1, kvCapacityTokens: 3000 }, new ManualClock(0), () => {});
    expect(() => pod.enqueue({ ...big, failedMs: undefined })).toThrow(/d0: request r0 needs 3001 KV tokens, more than the pod's 3000/);
  });
});
