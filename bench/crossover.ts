// bench:crossover — where a kernel batch should leave the main thread (SPEC.md §3: inline below a
// measured crossover). For pools of N prefill x N decode pods and batches of B picks, the same batches
// run on an engine that keeps every batch on the main thread and on one whose single Piscina worker
// takes every batch. The main thread is what the server cannot spare (it reads and writes every
// socket), so the line to compare is `mainUs`, its CPU time per pick: a worker pays off once the
// kernel time it takes away exceeds what handing the batch over costs the main thread. `totalUs` adds
// the worker's time (the whole process), and `batchUs` is the median wall time of one batch alone.
// Batches are kept IN_FLIGHT deep, as a busy stream keeps them, and each answered batch is reported.
// JSON lines on stdout: {"bench":"crossover","pool":"NxN","batch":B,"pairs":…,"where":"inline"|"worker",…}.
// Args: [--quick] [--sizes 8,32,...] [--batches 1,16,...] [--worker-queue N] (workers.queuePerThread).
// `--worker-only` skips the inline runs (to compare worker settings in alternating runs).

import { Registry } from "prom-client";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import type { PickAnswer, PickAnswers, PickInput } from "../src/engine/types.js";
import { silentLogger } from "../src/log.js";
import { emit, median, note, processCpuUs, procCpuUs, round } from "./measure.js";
import { rpcPoolsYaml } from "./rpc-workload.js";
import { benchArgs } from "./args.js";

const { values: args } = benchArgs("bench:crossover", {
  quick: { type: "boolean" },
  sizes: { type: "string", value: "LIST" },
  batches: { type: "string", value: "LIST" },
  "worker-queue": { type: "string", value: "N" },
  "worker-only": { type: "boolean" },
});
const quick = args.quick === true;
/** `--name 1,2,3` from the command line, else `otherwise`. */
function listArg(name: "--sizes" | "--batches" | "--worker-queue", otherwise: number[]): number[] {
  const value = args[name.slice(2) as "sizes" | "batches" | "worker-queue"];
  return value === undefined ? otherwise : value.split(",").map(Number);
}
const SIZES = listArg("--sizes", quick ? [16, 64] : [8, 32, 64, 128, 256]);
const BATCHES = listArg("--batches", quick ? [1, 64] : [1, 16, 64]);
const [WORKER_QUEUE] = listArg("--worker-queue", []);
const WORKER_ONLY = args["worker-only"] === true;
const ROUND_MS = quick ? 300 : 1000;
const IN_FLIGHT = 4;
const LATENCY_BATCHES = quick ? 50 : 200;

/** The main thread's CPU time so far in µs (10 ms ticks): worker threads are not in it. */
const mainThreadCpuUs = () => procCpuUs("/proc/thread-self/stat");

/** B picks on the medium pool, prompts of 256 to 8,255 tokens. */
function batchOf(size: number, round: number): PickInput[] {
  return Array.from({ length: size }, (_, k) => ({
    sloLevel: "medium",
    inputTokens: 256 + (((round * size + k) * 97) % 8000),
    outputTokens: 64 + (k % 7) * 50,
    seed: round * size + k,
  }));
}

function run(engine: Engine, inputs: PickInput[]): Promise<PickAnswers> {
  return new Promise((resolve) => engine.pickBatch(inputs, resolve));
}

function reportAll(engine: Engine, answers: PickAnswers): void {
  engine.report(answers.filter((a): a is PickAnswer => !(a instanceof Error)).map((a) => ({ requestId: a.requestId, ok: true })));
}

interface Measured {
  mainUs: number;
  totalUs: number;
  picksPerS: number;
  batchUs: number;
}

async function measure(n: number, batch: number, workers: number): Promise<Measured> {
  const yaml = rpcPoolsYaml(n, { workers, workerQueue: WORKER_QUEUE });
  const engine = await Engine.create({ config: parseConfig(yaml).config, logger: silentLogger, registry: new Registry() });
  engine.start();
  let round = 0;
  // Alone: one batch at a time, for its wall time.
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_BATCHES; i++) {
    const started = performance.now();
    reportAll(engine, await run(engine, batchOf(batch, round++)));
    latencies.push((performance.now() - started) * 1000);
  }
  // Deep: IN_FLIGHT batches outstanding; the first half of the time warms up.
  let picks = 0;
  let marks = { main: 0, total: 0, wall: 0, picks: 0 };
  const startedMs = performance.now();
  const lane = async () => {
    while (performance.now() - startedMs < ROUND_MS * 1.5) {
      const answers = await run(engine, batchOf(batch, round++));
      reportAll(engine, answers);
      picks += answers.length;
      if (marks.wall === 0 && performance.now() - startedMs >= ROUND_MS / 2) {
        marks = { main: mainThreadCpuUs(), total: processCpuUs(), wall: performance.now(), picks };
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const counted = picks - marks.picks;
  const result = {
    mainUs: (mainThreadCpuUs() - marks.main) / counted,
    totalUs: (processCpuUs() - marks.total) / counted,
    picksPerS: (counted * 1000) / (performance.now() - marks.wall),
    batchUs: median(latencies),
  };
  await engine.close();
  return result;
}

note(`bench:crossover: pools ${SIZES.map((n) => `${n}x${n}`).join(", ")}, batches of ${BATCHES.join(", ")} picks, ${IN_FLIGHT} batches in flight`);
for (const n of SIZES) {
  for (const batch of BATCHES) {
    for (const [where, workers] of [
      ["inline", 0],
      ["worker", 1],
    ] as const) {
      if (WORKER_ONLY && workers === 0) continue;
      const m = await measure(n, batch, workers);
      note(`${n}x${n}, ${batch} per batch, ${where}: main ${m.mainUs.toFixed(1)} µs/pick, process ${m.totalUs.toFixed(1)}, ${m.picksPerS.toFixed(0)} picks/s, a batch alone ${m.batchUs.toFixed(0)} µs`);
      emit({
        bench: "crossover",
        pool: `${n}x${n}`,
        batch,
        pairs: n * n * batch,
        where,
        ...(workers > 0 && WORKER_QUEUE !== undefined ? { workerQueue: WORKER_QUEUE } : {}),
        mainUs: round(m.mainUs, 2),
        totalUs: round(m.totalUs, 2),
        picksPerS: Math.round(m.picksPerS),
        batchUs: Math.round(m.batchUs),
      });
    }
  }
}
