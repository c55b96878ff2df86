// The server's own work per pick, in one process without sockets: what bench:rpc's HTTP and WebSocket
// cases cost in decoding, the engine (routing, the kernel, in-flight accounting, counters) and
// encoding, as CPU time, so that it can be compared across runs on a machine whose wall-clock
// throughput swings with its neighbours (bench:rpc prints the CPU steal it saw). Cases:
// - http: the bench:rpc pick body on 16x16 pools, 32 picks at a time through the micro-batched
//   `pickQueued` (as wrk's 32 connections arrive), JSON in and out, never reported (wrk does not report);
// - http-at-once: the same 32 picks each run at once as a batch of its own (`pickBatch`), which the
//   server does not do for HTTP: the comparison is why;
// - stream: bench:rpc's frames of 64 picks on 64x64 pools through `pickBatch`, msgpack in and out,
//   each frame's picks reported in one report frame (as bench/ws-load.ts does).
// `cpuUsPerPick` is the median over rounds of about half a second; `perCorePicksPerS` is its inverse,
// the ceiling one core could serve before any socket work; `scavenge…` the young generation's
// collections in those rounds (how often, and how long each held the thread). Then `encode-json`:
// one JSON answer by JSON.stringify and by the server's writer; `observe-histogram`: one pick-duration
// observation by prom-client's Histogram and by the tallied one the server uses; and
// `inflight-memory`: what a pick nobody reports keeps alive until it expires, in the collected heap
// and in resident memory (the in-flight table's typed-array columns are reserved up front and take
// pages only as rows are first written).
// Args: [--quick]. JSON lines on stdout.

import { constants, PerformanceObserver, type NodeGCPerformanceDetail, type PerformanceEntry } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Histogram, Registry } from "prom-client";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import type { PickAnswer } from "../src/engine/types.js";
import { silentLogger } from "../src/log.js";
import { TalliedHistogram } from "../src/metrics.js";
import { PICK_SECONDS_BUCKETS } from "../src/server/metrics.js";
import {
  compactPick,
  decodeBody,
  decodeFrame,
  decodePick,
  decodeReportItems,
  encodeMsgpack,
  encodePickAnswer,
} from "../src/server/codec.js";
import { cpuUsPerItem, emit, median, note, processCpuUs, round } from "./measure.js";
import { httpAtOnceRound, httpQueuedRound, PICK_BODY, rpcPoolsYaml, streamRound } from "./rpc-workload.js";
import { benchArgs } from "./args.js";

const quick = benchArgs("bench:pick-path", { quick: { type: "boolean" } }).values.quick === true;
const ROUNDS = quick ? 3 : 9;
const ROUND_S = quick ? 0.2 : 0.5;

async function engineFor(n: number): Promise<Engine> {
  const engine = await Engine.create({ config: parseConfig(rpcPoolsYaml(n)).config, logger: silentLogger, registry: new Registry() });
  engine.start();
  return engine;
}

/**
 * Median CPU microseconds per pick over ROUNDS rounds of `step` (which returns how many picks it made),
 * after an uncounted first round; `warmedUp` is called between them.
 */
async function cpuUsPerPick(step: () => Promise<number>, warmedUp: () => void): Promise<number> {
  const perPick: number[] = [];
  // The first round warms the code up (JIT tiers, WASM) and is not counted.
  await cpuUsPerItem(step, ROUND_S * 1000);
  warmedUp();
  for (let r = 0; r < ROUNDS; r++) perPick.push(await cpuUsPerItem(step, ROUND_S * 1000));
  return median(perPick);
}

const body = Buffer.from(PICK_BODY);

const httpStep = (engine: Engine) => httpQueuedRound(engine, { decodeBody, decodePick, encodePickAnswer });

/** The same 32 picks each run at once as a batch of its own (`pickBatch`), for comparison with batching. */
const httpAtOnceStep = (engine: Engine) => httpAtOnceRound(engine, { decodeBody, decodePick, encodePickAnswer });

const streamStep = (engine: Engine) => streamRound(engine, { decodeFrame, decodePick, decodeReportItems, compactPick, encodeMsgpack });

/**
 * The young generation's collections (scavenges) while picks run, from start() on (the warm-up round
 * left out, as from the CPU figure): how often per pick and how long each held the thread. What a
 * scavenge copies is what is still referenced from what it collects, so its pause follows what the
 * pick path keeps alive for a while, not what it allocates.
 */
class Scavenges {
  picks = 0;
  private started = false;
  private readonly pausesMs: number[] = [];
  private readonly observer = new PerformanceObserver((list) => this.take(list.getEntries()));

  start(): void {
    this.started = true;
    this.observer.observe({ entryTypes: ["gc"] });
  }

  /** Node's gc entries carry the collection's kind in `detail` (its typings leave it out). */
  private take(entries: readonly (PerformanceEntry & { detail?: NodeGCPerformanceDetail })[]): void {
    for (const entry of entries) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) this.pausesMs.push(entry.duration);
    }
  }

  /** Counts a step's picks. */
  async counting(step: Promise<number>): Promise<number> {
    const picks = await step;
    if (this.started) this.picks += picks;
    return picks;
  }

  stop(): { count: number; medianMs: number; maxMs: number } {
    this.take(this.observer.takeRecords());
    this.observer.disconnect();
    const pauses = this.pausesMs;
    return { count: pauses.length, medianMs: pauses.length === 0 ? 0 : median(pauses), maxMs: Math.max(0, ...pauses) };
  }
}

/**
 * One JSON answer's encoding and its copy into bytes (as the socket write does), by JSON.stringify and
 * by the server's writer (times rounded to the microsecond), over the same answers in alternating rounds.
 */
async function encodeJson(): Promise<{ stringifyUs: number; writerUs: number }> {
  const engine = await engineFor(16);
  const answers: PickAnswer[] = [];
  for (let i = 0; i < 2000; i++) {
    const [answer] = await engine.pick([decodePick(decodeBody(body, "json"))]);
    answers.push(answer as PickAnswer);
  }
  await engine.close();
  const rounds = { stringifyUs: [] as number[], writerUs: [] as number[] };
  for (let r = 0; r < ROUNDS * 2; r++) {
    for (const [key, encode] of [
      ["stringifyUs", (a: PickAnswer) => JSON.stringify(a)],
      ["writerUs", (a: PickAnswer) => encodePickAnswer(a, "json")],
    ] as const) {
      const before = processCpuUs();
      for (const a of answers) Buffer.from(encode(a));
      rounds[key].push((processCpuUs() - before) / answers.length);
    }
  }
  return { stringifyUs: median(rounds.stringifyUs), writerUs: median(rounds.writerUs) };
}

/**
 * One pick-duration observation, by a prom-client Histogram child and by a tallied histogram's slot
 * (src/metrics.ts), with the server's buckets, in alternating rounds over the same values, in ns.
 */
function observeNs(): { promClientNs: number; talliedNs: number } {
  const buckets = PICK_SECONDS_BUCKETS;
  const registry = new Registry();
  const child = new Histogram({ name: "p_seconds", help: "p", labelNames: ["via"], buckets: [...buckets], registers: [registry] }).labels("pick");
  const slot = new TalliedHistogram(registry, "t_seconds", "t", ["via"], buckets).labels("pick");
  const values = Array.from({ length: 1024 }, (_, i) => ((i * 7919) % 1000) * 3e-7);
  const n = 200_000;
  const rounds = { promClientNs: [] as number[], talliedNs: [] as number[] };
  for (let r = 0; r < ROUNDS * 2; r++) {
    for (const [key, observe] of [
      ["promClientNs", (v: number) => child.observe(v)],
      ["talliedNs", (v: number) => slot.observe(v)],
    ] as const) {
      const before = processCpuUs();
      for (let i = 0; i < n; i++) observe(values[i & 1023]);
      rounds[key].push(((processCpuUs() - before) * 1000) / n);
    }
  }
  return { promClientNs: median(rounds.promClientNs), talliedNs: median(rounds.talliedNs) };
}

for (const [name, n, step] of [
  ["http", 16, httpStep],
  ["http-at-once", 16, httpAtOnceStep],
  ["stream", 64, streamStep],
] as const) {
  const engine = await engineFor(n);
  const scavenges = new Scavenges();
  const us = await cpuUsPerPick(
    () => scavenges.counting(step(engine)),
    () => scavenges.start(),
  );
  const pauses = scavenges.stop();
  note(`pick path, ${name} on ${n}x${n}: ${us.toFixed(2)} CPU µs per pick; ${pauses.count} scavenges, median ${pauses.medianMs.toFixed(2)} ms`);
  emit({
    bench: "rpc",
    case: `path-${name}`,
    pool: `${n}x${n}`,
    cpuUsPerPick: round(us, 2),
    perCorePicksPerS: Math.round(1e6 / us),
    scavengesPer10kPicks: round((pauses.count * 10_000) / scavenges.picks, 1),
    scavengeMedianMs: round(pauses.medianMs, 2),
    scavengeMaxMs: round(pauses.maxMs, 2),
  });
  await engine.close();
}

/**
 * Memory per unreported pick: the collected heap and the resident set (the in-flight columns' pages
 * included) after full collections, before and after `picks` picks that nobody reports, divided by
 * the entries they added.
 */
async function inflightMemory(picks: number): Promise<{ heapBytesPerPick: number; rssBytesPerPick: number; entries: number }> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const engine = await engineFor(16);
  // A first round creates what every later pick shares (the pods' in-flight records, the code).
  await httpAtOnceStep(engine);
  const before = settled(gc);
  const entriesBefore = engine.cluster.inflight.size;
  for (let done = 0; done < picks; done += 32) await httpAtOnceStep(engine);
  const after = settled(gc);
  const entries = engine.cluster.inflight.size - entriesBefore;
  await engine.close();
  return {
    heapBytesPerPick: (after.heapUsed - before.heapUsed) / entries,
    rssBytesPerPick: (after.rss - before.rss) / entries,
    entries,
  };
}

function settled(gc: () => void): NodeJS.MemoryUsage {
  gc();
  gc();
  return process.memoryUsage();
}

const encoded = await encodeJson();
note(`one JSON answer: ${encoded.stringifyUs.toFixed(2)} CPU µs by JSON.stringify, ${encoded.writerUs.toFixed(2)} by the writer`);
emit({ bench: "rpc", case: "encode-json", pool: "16x16", stringifyUs: round(encoded.stringifyUs, 2), writerUs: round(encoded.writerUs, 2) });

const observed = observeNs();
note(`one pick-duration observation: ${observed.promClientNs.toFixed(0)} CPU ns by prom-client's Histogram, ${observed.talliedNs.toFixed(0)} by the tallied one`);
emit({ bench: "rpc", case: "observe-histogram", promClientNs: round(observed.promClientNs, 0), talliedNs: round(observed.talliedNs, 0) });

const memory = await inflightMemory(quick ? 8192 : 65536);
note(`an unreported pick keeps ${memory.heapBytesPerPick.toFixed(0)} heap bytes, ${memory.rssBytesPerPick.toFixed(0)} resident bytes in all (${memory.entries} in flight)`);
emit({
  bench: "rpc",
  case: "inflight-memory",
  pool: "16x16",
  entries: memory.entries,
  heapBytesPerPick: Math.round(memory.heapBytesPerPick),
  rssBytesPerPick: Math.round(memory.rssBytesPerPick),
});
