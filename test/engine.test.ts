// The engine on a configuration of unscraped static pods: routing, picks on the main thread and on
// real Piscina workers (same answers for the same seeds), errors per item, in-flight load and reports.

import { existsSync } from "node:fs";
import type { Piscina } from "piscina";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock, type Clock } from "../src/clock.js";
import { parseConfig } from "../src/config/load.js";
import { Engine, EXPLAIN_MAX_PAIRS, MAX_WAITING_WORKER_BATCHES } from "../src/engine/engine.js";
import type { PickAnswer, PickAnswers, PickInput } from "../src/engine/types.js";
import { HeadroomError } from "../src/errors.js";
import { MemoryLogger } from "../src/log.js";
import { threadNices } from "./fixtures/threads.js";

const POOLS = `
pools:
  - sloLevel: high
    pods:
      - { address: "10.0.0.1:8000", role: prefill }
      - { address: "10.0.0.2:8000", role: prefill }
      - { address: "10.0.0.3:8000", role: decode }
      - { address: "10.0.0.4:8000", role: decode }
  - sloLevel: medium
    pods:
      - { address: "10.0.1.1:8000", role: both }
  - sloLevel: low
    pods: []
`;

const engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
});

async function engine(extra = "", clock?: Clock) {
  const registry = new Registry();
  const e = await Engine.create({ config: parseConfig(`${POOLS}\n${extra}`).config, logger: new MemoryLogger(), registry, clock });
  engines.push(e);
  e.start();
  return { engine: e, registry };
}

const answer = (x: PickAnswer | HeadroomError): PickAnswer => {
  if (x instanceof HeadroomError) throw x;
  return x;
};

describe("routing", () => {
  it("maps levels case-insensitively, defaults to medium and names the known levels otherwise", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    expect(e.route("HIGH")).toEqual({ pool: "high", targets: { ttftMs: 300, tpotMs: 30 }, sloPriority: 1 });
    expect(e.route(undefined).pool).toBe("medium");
    expect(() => e.route("gold")).toThrow(/unknown SLO level "gold" \(known: high, medium, low\)/);
  });
});

describe("picks", () => {
  it("answers with addresses, predictions and gateway headers; a one-worker pool prefills locally", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const [high, medium] = (await e.pick([
      { sloLevel: "high", inputTokens: 1000, outputTokens: 100, seed: 1, requestId: "a" },
      { inputTokens: 100, outputTokens: 10, seed: 2 },
    ])).map(answer);
    expect(high.pool).toBe("high");
    expect(high.requestId).toBe("a");
    expect(["10.0.0.1:8000", "10.0.0.2:8000"]).toContain(high.prefill);
    expect(["10.0.0.3:8000", "10.0.0.4:8000"]).toContain(high.decode);
    expect(high.headers).toEqual({ "x-gateway-destination-endpoint": high.decode, "x-prefiller-host-port": high.prefill });
    expect(high.predicted.ttftMs).toBeCloseTo(high.predicted.prefillTtftMs + high.predicted.decodeTtftMs + high.predicted.transferMs, 9);
    expect(high.headroom.ttftMs).toBeCloseTo(300 * 0.9 - high.predicted.ttftMs, 9);
    expect(medium).toMatchObject({ pool: "medium", decode: "10.0.1.1:8000", prefill: undefined, decodeOnly: true });
    expect(medium.headers["x-prefiller-host-port"]).toBeUndefined();
    expect(e.cluster.inflight.size).toBe(2);
    expect(typeof medium.requestId).toBe("string");
  });

  it("a kernel on a worker thread picks what the main thread's kernel picks", async () => {
    const inputs = Array.from({ length: 20 }, (_, k) => ({ sloLevel: "high", inputTokens: 200 + 500 * k, outputTokens: 50, seed: 100 + k }));
    const { engine: inline } = await engine("workers: { threads: 0 }");
    const { engine: pooled, registry } = await engine("workers: { threads: 1, inlineBelowPairs: 0 }");
    const a = (await inline.pick(inputs)).map(answer);
    const b = (await pooled.pick(inputs)).map(answer);
    const strip = (x: PickAnswer) => ({ ...x, requestId: "" });
    expect(b.map(strip)).toEqual(a.map(strip));
    const batches = await registry.getSingleMetric("headroom_pick_batches_total")!.get();
    expect(batches.values.find((v) => v.labels.where === "worker")?.value).toBeGreaterThan(0);
  });

  it("batches of one pool that reach a worker together see each other's load, as inline ones do", async () => {
    // batchCapacity 4: eight picks are two batches, both sent before the first one's answer is back.
    // A manual clock: no refresh lands between the two batches (a refresh publishes loads that do not
    // yet hold the first batch's picks, the race README's Limits describes).
    const inputs = Array.from({ length: 8 }, (_, k) => ({ sloLevel: "high", inputTokens: 3000, outputTokens: 200, seed: 7 + k }));
    const { engine: inline } = await engine("workers: { threads: 0, batchCapacity: 4 }", new ManualClock(1000));
    const { engine: pooled } = await engine("workers: { threads: 1, inlineBelowPairs: 0, batchCapacity: 4 }", new ManualClock(1000));
    const a = (await inline.pick(inputs)).map(answer);
    const b = (await pooled.pick(inputs)).map(answer);
    const strip = (x: PickAnswer) => ({ ...x, requestId: "" });
    expect(b.map(strip)).toEqual(a.map(strip));
    // The second batch's picks queue behind the first's: their TTFT is higher.
    expect(b[4].predicted.ttftMs).toBeGreaterThan(b[0].predicted.ttftMs);
  });

  // Linux only: elsewhere a thread has no priority of its own.
  it.runIf(existsSync("/proc/thread-self"))("runs its kernel worker threads at workers.nice and leaves the main thread's alone", async () => {
    const atSeven = () => [...threadNices().values()].filter((n) => n === 7);
    const mainBefore = threadNices().get(String(process.pid));
    expect(atSeven()).toHaveLength(0);
    const { engine: e } = await engine("workers: { threads: 2, inlineBelowPairs: 0, nice: 7 }");
    expect(answer((await e.pick([{ sloLevel: "high", seed: 1 }]))[0]).pool).toBe("high");
    await vi.waitFor(() => expect(atSeven()).toHaveLength(2), { timeout: 10_000 });
    expect(threadNices().get(String(process.pid))).toBe(mainBefore);
  });

  it("answers each bad item with its own error and serves the rest", async () => {
    const { engine: e, registry } = await engine("workers: { threads: 0 }");
    const results = await e.pick([
      { sloLevel: "gold" },
      { sloLevel: "low" },
      { sloLevel: "high", inputTokens: -5 },
      { sloLevel: "high", sloTtftMs: 0.001, priority: -1, seed: 3 },
      { sloLevel: "high", seed: 4 },
    ]);
    expect(results.map((r) => (r instanceof HeadroomError ? r.code : r.outcome))).toEqual([
      "UNKNOWN_LEVEL",
      "NO_CANDIDATES",
      "REQUEST_INVALID",
      "SHED",
      "positive_headroom",
    ]);
    const selections = await registry.getSingleMetric("llm_d_inference_scheduler_pd_slo_pair_selections_total")!.get();
    expect(Object.fromEntries(selections.values.map((v) => [v.labels.outcome, v.value]))).toMatchObject({ shed: 1, no_candidates: 1, positive_headroom: 1 });
  });

  it("explain on a pool past EXPLAIN_MAX_PAIRS is left out and the pick answered (160,000 pairs held the main thread for a second)", async () => {
    const pods = (role: string, octet: number) => Array.from({ length: 400 }, (_, i) => `      - { address: "10.${octet}.${i >> 8}.${i & 255}:8000", role: ${role} }`).join("\n");
    const pools = `
pools:
  - sloLevel: high
    pods:
${pods("prefill", 1)}
${pods("decode", 2)}
  - sloLevel: medium
    pods: []
  - sloLevel: low
    pods: []
workers: { threads: 0 }
`;
    const e = await Engine.create({ config: parseConfig(pools).config, logger: new MemoryLogger(), registry: new Registry() });
    engines.push(e);
    e.start();
    const [a] = (await e.pick([{ sloLevel: "high", inputTokens: 1000, outputTokens: 100, seed: 1, explain: true }])).map(answer);
    expect(a.pairs).toBe(160_000);
    expect(EXPLAIN_MAX_PAIRS).toBeLessThan(160_000);
    expect(a.explain).toBeUndefined();
    expect(a.decode).toMatch(/^10\.2\./);
  });

  it("explain lists the best pairs, the picked pair's numbers among them", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }\noptimizer: { headroomStrategy: best }");
    const [a] = (await e.pick([{ sloLevel: "high", inputTokens: 800, outputTokens: 100, seed: 9, explain: true }])).map(answer);
    expect(a.explain).toHaveLength(4);
    expect(a.explain![0]).toMatchObject({ prefill: a.prefill, decode: a.decode, positive: true });
    expect(a.explain![0].blended).toBeCloseTo(a.headroom.blended!, 9);
  });
});

describe("picks that are a batch already", () => {
  const inputs = Array.from({ length: 12 }, (_, k) => ({ sloLevel: ["high", "medium", "gold"][k % 3], inputTokens: 300 + 400 * k, outputTokens: 40, seed: 7 + k }));
  const strip = (x: PickAnswer | HeadroomError) => (x instanceof HeadroomError ? x.code : { ...x, requestId: "" });

  /** pickBatch's answers, and whether they came before it returned. */
  function pickBatch(e: Engine, batch: PickInput[], options?: { fallbacks?: boolean }): { atOnce: boolean; answers: Promise<PickAnswers> } {
    let answered = false;
    const answers = new Promise<PickAnswers>((resolve) =>
      e.pickBatch(
        batch,
        (values) => {
          answered = true;
          resolve(values);
        },
        options,
      ),
    );
    return { atOnce: answered, answers };
  }

  it("counts batches on the worker threads until they are answered (headroom_worker_batches)", async () => {
    const { engine: e, registry } = await engine("workers: { threads: 1, inlineBelowPairs: 0 }");
    const gauge = async (state: string) => Number(new RegExp(`^headroom_worker_batches\\{state="${state}"\\} (\\d+)$`, "m").exec(await registry.metrics())?.[1]);
    const { atOnce, answers } = pickBatch(e, inputs.filter((i) => i.sloLevel === "high"));
    expect(atOnce).toBe(false);
    expect(await gauge("running")).toBe(1);
    expect(await gauge("queued")).toBe(0);
    await answers;
    expect(await gauge("running")).toBe(0);
  });

  it("runs inline at once: answers what pick answers for the same seeds, and records the same in-flight load", async () => {
    // Stopped clocks: a prefill's load moves from queued to done as its predicted times pass.
    const { engine: now } = await engine("workers: { threads: 0 }", new ManualClock(1000));
    const { engine: later } = await engine("workers: { threads: 0 }", new ManualClock(1000));
    const batch = pickBatch(now, inputs);
    expect(batch.atOnce).toBe(true);
    const a = await batch.answers;
    const b = await later.pick(inputs);
    expect(a.map(strip)).toEqual(b.map(strip));
    expect(a.filter((x) => x instanceof HeadroomError).map((x) => (x as HeadroomError).code)).toEqual(["UNKNOWN_LEVEL", "UNKNOWN_LEVEL", "UNKNOWN_LEVEL", "UNKNOWN_LEVEL"]);
    expect(now.cluster.inflight.size).toBe(8);
    const loads = (e: Engine) => e.cluster.pods.all().map((pod) => [pod.spec.address, e.cluster.inflight.podLoad(pod.spec.address)]);
    expect(loads(now)).toEqual(loads(later));
  });

  it("fallbacks: false ranks none and changes nothing else, inline and on a worker", async () => {
    for (const workers of ["workers: { threads: 0 }", "workers: { threads: 1, inlineBelowPairs: 0 }"]) {
      const { engine: ranked } = await engine(workers, new ManualClock(1000));
      const { engine: unranked } = await engine(workers, new ManualClock(1000));
      const a = await pickBatch(ranked, inputs).answers;
      const b = await pickBatch(unranked, inputs, { fallbacks: false }).answers;
      const picked = a.filter((x): x is PickAnswer => !(x instanceof HeadroomError));
      expect(picked.some((x) => x.fallbacks.length > 0)).toBe(true);
      expect(b.map(strip)).toEqual(a.map((x) => (x instanceof HeadroomError ? x.code : { ...x, requestId: "", fallbacks: [] })));
    }
  });

  /** Holds the main thread while a worker answers what was handed to it. */
  const busy = (ms: number) => {
    for (const until = performance.now() + ms; performance.now() < until; );
  };

  it("a worker's picks whose pods were drained or deleted while the batch was out are made again on the current pods", async () => {
    const { engine: e } = await engine("workers: { threads: 1, inlineBelowPairs: 0 }");
    await e.pick([{ sloLevel: "high", seed: 1 }]);
    const load = (address: string) => e.cluster.inflight.podLoad(address);
    const before = { prefill: load("10.0.0.1:8000").prefillRequests, decode: load("10.0.0.3:8000").decodeRequests };
    const { answers } = pickBatch(
      e,
      Array.from({ length: 6 }, (_, k) => ({ sloLevel: "high", seed: 20 + k })),
    );
    busy(300);
    e.upsertPods([{ address: "10.0.0.3:8000", pool: "high", role: "decode", draining: true }]);
    e.deletePod("10.0.0.1:8000");
    e.cluster.refreshAll();
    for (const a of (await answers).map(answer)) expect(a).toMatchObject({ prefill: "10.0.0.2:8000", decode: "10.0.0.4:8000" });
    // Picked again, they load only the pods still there.
    expect(load("10.0.0.1:8000").prefillRequests).toBe(before.prefill);
    expect(load("10.0.0.3:8000").decodeRequests).toBe(before.decode);
    expect(load("10.0.0.2:8000").prefillRequests).toBeGreaterThanOrEqual(6);
  });

  it("explain of a worker's pick answered after a refresh names the pods the numbers belong to", async () => {
    const { engine: e } = await engine("workers: { threads: 1, inlineBelowPairs: 0 }\noptimizer: { headroomStrategy: best }");
    await e.pick([{ sloLevel: "high", seed: 1 }]);
    const { answers } = pickBatch(e, [{ sloLevel: "high", inputTokens: 800, outputTokens: 100, seed: 9, explain: true }]);
    busy(300);
    // A decode pod that sorts first joins: every index of the new version moves by one.
    e.upsertPods([{ address: "10.0.0.0:8000", pool: "high", role: "decode" }]);
    e.cluster.refreshAll();
    const [a] = (await answers).map(answer);
    const decodes = new Set(["10.0.0.0:8000", "10.0.0.3:8000", "10.0.0.4:8000"]);
    for (const pair of a.explain!) {
      expect(decodes.has(pair.decode)).toBe(true);
      expect(["10.0.0.1:8000", "10.0.0.2:8000"]).toContain(pair.prefill);
    }
  });

  it("batches past what the worker threads' queues hold are picked on the main thread, never queued without bound", async () => {
    const { engine: e, registry } = await engine("workers: { threads: 1, inlineBelowPairs: 0, queuePerThread: 1 }");
    const inlineBatches = async () => Number(/^headroom_pick_batches_total\{where="inline"\} (\d+)$/m.exec(await registry.metrics())?.[1] ?? 0);
    const pending = Array.from({ length: MAX_WAITING_WORKER_BATCHES + 20 }, (_, k) => pickBatch(e, [{ sloLevel: "high", seed: k }]).answers);
    // One batch in the thread's queue, MAX_WAITING_WORKER_BATCHES waiting for room, the rest inline.
    expect(await inlineBatches()).toBe(19);
    expect((await Promise.all(pending)).flat().every((a) => !(a instanceof HeadroomError))).toBe(true);
  });

  it("a worker thread that dies answers the batches sent to it WORKER_FAILED, and its replacement picks the next", async () => {
    const { engine: e, registry } = await engine("workers: { threads: 1, inlineBelowPairs: 0, queuePerThread: 4 }");
    const failures = async () => Number(/^headroom_worker_failures_total (\d+)$/m.exec(await registry.metrics())?.[1]);
    const thread = (e as unknown as { workers: Piscina }).workers.threads[0]!;
    // Terminated before the batches reach it: Piscina still counts it ready and sends them there.
    const exited = thread.terminate();
    const batches = [0, 1, 2].map((k) => pickBatch(e, inputs.filter((i) => i.sloLevel === "high").map((i) => ({ ...i, seed: i.seed + k }))).answers);
    await exited;
    const answers = (await Promise.all(batches)).flat();
    expect(answers.map((a) => (a instanceof HeadroomError ? a.code : "picked"))).toEqual(answers.map(() => "WORKER_FAILED"));
    expect((answers[0] as HeadroomError).message).toMatch(/^the kernel worker failed: /);
    expect(await failures()).toBe(3);
    const [next] = await pickBatch(e, inputs.slice(0, 1)).answers;
    expect(answer(next).decode).toMatch(/^10\.0\.0\.[34]:8000$/);
    expect(await failures()).toBe(3);
  });

  it("is answered later when a pool's batch belongs on a worker, a batch window is set, or picks are queued ahead", async () => {
    const { engine: pooled } = await engine("workers: { threads: 1, inlineBelowPairs: 0 }");
    const { engine: windowed } = await engine("workers: { threads: 0, batchWindowUs: 1000 }");
    for (const e of [pooled, windowed]) {
      const batch = pickBatch(e, inputs);
      expect(batch.atOnce).toBe(false);
      expect(e.cluster.inflight.size).toBe(0);
      expect((await batch.answers).map(strip)).toHaveLength(inputs.length);
    }
    const { engine: queued } = await engine("workers: { threads: 0 }");
    const first = queued.pick(inputs.slice(0, 3));
    const batch = pickBatch(queued, inputs.slice(3));
    expect(batch.atOnce).toBe(false);
    expect((await first).map(strip).filter((x) => typeof x !== "string")).toHaveLength(2);
    expect(queued.cluster.inflight.size).toBe(8);
    expect((await batch.answers).map(strip)).toHaveLength(inputs.length - 3);
  });
});

describe("reports and pods", () => {
  it("a report releases the pick; unknown ids are counted; a bad report changes nothing", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const [a] = (await e.pick([{ sloLevel: "high", requestId: "r1", seed: 1 }])).map(answer);
    expect(() => e.report([{ requestId: "r1", ok: true }, { requestId: "", ok: true }])).toThrow(/reports\[1\]: requestId/);
    expect(e.cluster.inflight.size).toBe(1);
    expect(e.report([{ requestId: "r1", ok: true, ttftMs: a.predicted.ttftMs, tpotMs: a.predicted.tpotMs }, { requestId: "nope", ok: true }])).toEqual({ known: 1, unknown: 1 });
    expect(e.cluster.inflight.size).toBe(0);
  });

  it("pushed pods join a pool at once, all or none; deleted ones leave", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    expect(() => e.upsertPods([{ address: "10.0.2.1:8000", pool: "low", role: "both" }, { address: "bad", pool: "low", role: "both" }])).toThrow(/pods\[1\]\.address/);
    expect(() => e.upsertPods([{ address: "10.0.2.1:8000", pool: "nope", role: "both" }])).toThrow(/unknown pool "nope"/);
    expect(e.ready().reasons).toEqual(["pool low: no candidate pair (0 pods, none eligible for decode)"]);
    // A decode pod alone prefills locally: the pool can pick, so it is ready.
    e.upsertPods([{ address: "10.0.2.2:8000", pool: "low", role: "decode" }]);
    await new Promise((r) => setTimeout(r, 20));
    expect(e.ready()).toEqual({ ready: true, reasons: [] });
    expect(answer((await e.pick([{ sloLevel: "low", seed: 1 }]))[0]).decode).toBe("10.0.2.2:8000");
    expect(e.deletePod("10.0.2.2:8000")).toBe(true);
    e.upsertPods([{ address: "10.0.2.1:8000", pool: "low", role: "both" }]);
    // The pool's snapshot is rebuilt right after the current event-loop turn.
    await new Promise((r) => setTimeout(r, 20));
    expect(e.ready()).toEqual({ ready: true, reasons: [] });
    const [low] = (await e.pick([{ sloLevel: "low", seed: 1 }])).map(answer);
    expect(low.decode).toBe("10.0.2.1:8000");
    expect(e.deletePod("10.0.2.1:8000")).toBe(true);
    expect(e.deletePod("10.0.2.1:8000")).toBe(false);
  });
});

describe("reload", () => {
  it("applies targets, optimizer and static pods; refuses what needs a restart and keeps the old config", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const next = parseConfig(`${POOLS.replace("pods: []", 'pods: [{ address: "10.0.3.1:8000", role: both }]').replace("sloLevel: high", "sloLevel: high\n    targets: { ttftMs: 500 }")}\nworkers: { threads: 0 }\noptimizer: { headroomStrategy: least }`).config;
    e.reload(next);
    expect(e.route("high").targets).toEqual({ ttftMs: 500, tpotMs: 30 });
    await new Promise((r) => setTimeout(r, 20));
    const [low] = (await e.pick([{ sloLevel: "low", seed: 1 }])).map(answer);
    expect(low.decode).toBe("10.0.3.1:8000");
    const restart = parseConfig(`${POOLS}\nworkers: { threads: 0 }\nserver: { port: 9999 }\npredictors: { refreshMs: 50 }`).config;
    expect(() => e.reload(restart)).toThrow(/need a restart: server, predictors/);
    expect(e.route("high").targets.ttftMs).toBe(500);
  });

  it("a static pod moved to another pool keeps its in-flight load (the old pool comes first in the file)", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const [a] = (await e.pick([{ sloLevel: "high", seed: 1 }])).map(answer);
    expect(e.cluster.inflight.podLoad(a.decode).decodeRequests).toBe(1);
    const moved = POOLS.replace(`      - { address: "${a.decode}", role: decode }\n`, "").replace(
      `      - { address: "10.0.1.1:8000", role: both }`,
      `      - { address: "10.0.1.1:8000", role: both }\n      - { address: "${a.decode}", role: decode }`,
    );
    expect(moved).not.toEqual(POOLS);
    e.reload(parseConfig(`${moved}\nworkers: { threads: 0 }`).config);
    expect(e.cluster.pods.get(a.decode)?.spec.pool).toBe("medium");
    expect(e.cluster.inflight.podLoad(a.decode).decodeRequests).toBe(1);
  });

  it("new targets reach picks without a level (the default pool) and the pool's planner", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const plannedTargets = (pool: string) => (e.planner() as { pools: { pool: string; targets: unknown }[] }).pools.find((p) => p.pool === pool)?.targets;
    const before = e.route(undefined).targets;
    expect(plannedTargets("medium")).toEqual(before);
    e.reload(parseConfig(`${POOLS.replace("sloLevel: medium", "sloLevel: medium\n    targets: { ttftMs: 20, tpotMs: 5 }")}\nworkers: { threads: 0 }`).config);
    expect(e.route(undefined)).toMatchObject({ pool: "medium", targets: { ttftMs: 20, tpotMs: 5 } });
    expect(plannedTargets("medium")).toEqual({ ttftMs: 20, tpotMs: 5 });
    expect(before).not.toEqual({ ttftMs: 20, tpotMs: 5 });
  });
});

describe("planners", () => {
  it("a report that outlived its pick's in-flight entry still reaches its pool's planner, found by the pod that served it", async () => {
    const clock = new ManualClock(1000);
    const { engine: e } = await engine("workers: { threads: 0 }", clock);
    const [slow] = (await e.pick([{ sloLevel: "high", requestId: "slow", seed: 1 }])).map(answer);
    // Far past inflightTtlFactor times its predicted time: the entry has expired.
    clock.advance(20_000);
    expect(e.cluster.inflight.size).toBe(0);
    const late = { requestId: "slow", ok: true, ttftMs: 9000, tpotMs: 400 };
    expect(e.report([{ ...late, decode: slow.decode }, { ...late, requestId: "elsewhere" }])).toEqual({ known: 0, unknown: 2 });
    clock.advance(30_000);
    const high = (e.planner() as { pools: { pool: string; observation: { completions: number; violationRate?: number } | null }[] }).pools.find((p) => p.pool === "high")!;
    // The one naming its pod counted (and violated both targets); the other names none, so no pool.
    expect(high.observation).toMatchObject({ completions: 1, violationRate: 1 });
  });

  it("one advisory planner per pool reports through /v1/planner, starting at one both worker each", async () => {
    const { engine: e } = await engine("workers: { threads: 0 }");
    const state = e.planner() as { budgetGpus: number; pools: { pool: string; actuator: string; desired: { both: number; prefill: number; decode: number } }[] };
    expect(state.budgetGpus).toBe(8);
    expect(state.pools.map((p) => p.pool).sort()).toEqual(["high", "low", "medium"]);
    for (const p of state.pools) expect(p.desired).toMatchObject({ both: 1, prefill: 0, decode: 0 });
    expect(new Set(state.pools.map((p) => p.actuator))).toEqual(new Set(["advisory"]));
  });
});

describe("planner configuration", () => {
  it("takes the actuator and each pool's tuning from the configuration", async () => {
    const yaml = `${POOLS.replace("sloLevel: high", "sloLevel: high\n    planner: { cooldownMs: 5000, burstFactor: 2, scaleDownWindowMs: 90000 }")}
workers: { threads: 0 }
planners: { actuator: webhook, webhook: { url: "http://127.0.0.1:9/decisions" } }`;
    const e = await Engine.create({ config: parseConfig(yaml).config, logger: new MemoryLogger(), registry: new Registry() });
    engines.push(e);
    const state = e.planner() as { pools: { pool: string; actuator: string; tuning: { cooldownMs: number; burstFactor: number } }[] };
    const high = state.pools.find((p) => p.pool === "high")!;
    expect(high.actuator).toBe("webhook");
    expect(high.tuning).toMatchObject({ cooldownMs: 5000, burstFactor: 2, scaleDownWindowMs: 90000 });
    expect(state.pools.find((p) => p.pool === "medium")!.tuning.burstFactor).toBe(1.5);
  });
});
