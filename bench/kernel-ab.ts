// bench:kernel-ab — two builds of the WebAssembly kernel on the WebSocket benchmark's own kernel calls.
// The engine runs bench:rpc's stream frames on its 64x64 pools (bench/rpc-workload.ts) in this process,
// once over the three levels (batches of about 21) and once on one level (batches of 64), and every
// call its inline kernels make (parameters, snapshots, loads, batches) is recorded. Both builds then
// replay the recordings: each batch on A and on B back to back, the order flipping every batch, in
// rounds with fresh kernel instances each (a kernel kept for the whole run showed a steady 2–4 %
// bias between two instances of the same build). The CPU time of the pick calls alone is compared; the
// builds must give the same result rows, value for value.
// Args: A.wasm [B.wasm, default build/release.wasm] [--rounds N, default 10; --quick: 2].
// One JSON line per case on stdout: the median CPU µs a pick of each build and the median B/A ratio.
// Example, against an older checkout built in /tmp/old:
//   npm run bench:kernel-ab -- /tmp/old/build/release.wasm

import { readFileSync } from "node:fs";
import { Registry } from "prom-client";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import type { PickAnswer } from "../src/engine/types.js";
import type { OptimizerParams, PickRequest, PoolSnapshot, TopologyParams } from "../src/kernel/types.js";
import { WasmKernel } from "../src/kernel/wasm.js";
import { silentLogger } from "../src/log.js";
import { decodeFrame, decodePick, NO_SLO_HEADERS } from "../src/server/codec.js";
import { shippedFile } from "../src/paths.js";
import { emit, median, note, round } from "./measure.js";
import { pickFrames, rpcPoolsYaml } from "./rpc-workload.js";
import { benchArgs } from "./args.js";

type Call =
  | { op: "params"; params: OptimizerParams; topology: TopologyParams }
  | { op: "load"; snap: PoolSnapshot }
  | { op: "loads"; snap: PoolSnapshot }
  | { op: "pick"; requests: PickRequest[] };

const { values: args, positionals: builds } = benchArgs("bench:kernel-ab", { quick: { type: "boolean" }, rounds: { type: "string", value: "N" } }, { min: 1, max: 2, usage: "A.wasm [B.wasm]" });
const quick = args.quick === true;
const ROUNDS = args.rounds !== undefined ? Number(args.rounds) : quick ? 2 : 10;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  process.stderr.write(`bench:kernel-ab: --rounds must be a whole number >= 1, got ${args.rounds}\n`);
  process.exit(2);
}
const [aPath, bPath = shippedFile("build", "release.wasm")] = builds;
const modules = [new WebAssembly.Module(readFileSync(aPath)), new WebAssembly.Module(readFileSync(bPath))] as const;
/** Frames per case: enough batches that every pool's kernel loads a few snapshots. */
const FRAMES = quick ? 24 : 96;

/**
 * The engine's inline kernel calls for FRAMES stream frames over `levels`, one list per kernel that
 * picked. Recorded by wrapping WasmKernel's methods for the length of the run; snapshots are copied,
 * since the engine moves their loads in place between refreshes.
 */
async function record(levels: string[]): Promise<Call[][]> {
  const proto = WasmKernel.prototype;
  const original = { setParams: proto.setParams, loadSnapshot: proto.loadSnapshot, updateLoads: proto.updateLoads, pick: proto.pick };
  const logs = new Map<WasmKernel, Call[]>();
  const log = (k: WasmKernel, call: Call) => {
    const calls = logs.get(k) ?? [];
    logs.set(k, calls);
    calls.push(call);
  };
  proto.setParams = function (params, topology) {
    log(this, { op: "params", params: structuredClone(params), topology: structuredClone(topology) });
    return original.setParams.call(this, params, topology);
  };
  proto.loadSnapshot = function (snap) {
    log(this, { op: "load", snap: structuredClone(snap) });
    return original.loadSnapshot.call(this, snap);
  };
  proto.updateLoads = function (snap) {
    log(this, { op: "loads", snap: structuredClone(snap) });
    return original.updateLoads.call(this, snap);
  };
  proto.pick = function (requests, expectedVersion) {
    log(this, { op: "pick", requests: requests.map((r) => ({ ...r })) });
    return original.pick.call(this, requests, expectedVersion);
  };
  try {
    const engine = await Engine.create({ config: parseConfig(rpcPoolsYaml(64)).config, logger: silentLogger, registry: new Registry() });
    engine.start();
    const frames = pickFrames(levels);
    for (let f = 0; f < FRAMES; f++) {
      const inputs = decodeFrame(frames[f % frames.length]).items.map((item, i) => decodePick(item, NO_SLO_HEADERS, `items[${i}].`));
      const answers = await engine.pick(inputs);
      // Reported, as bench/ws-load.ts does, so that the loads stay those of a served stream.
      engine.report(answers.map((a) => ({ requestId: (a as PickAnswer).requestId, ok: true })));
      // A loop turn with timers between frames, as a socket's messages have: refreshes happen.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await engine.close();
  } finally {
    Object.assign(proto, original);
  }
  return [...logs.values()].filter((calls) => calls.some((c) => c.op === "pick"));
}

/** A fresh kernel per recorded one, on `module`, with the recording's parameters. */
function kernelsFor(module: WebAssembly.Module, logs: Call[][]): WasmKernel[] {
  return logs.map((calls) => {
    const p = calls.find((c) => c.op === "params") as Extract<Call, { op: "params" }>;
    return new WasmKernel(p.params, p.topology, {}, module);
  });
}

/**
 * One pass over the recordings on both sides, each batch on A and B back to back (order flipping):
 * CPU µs a pick of each, and, when asked, every batch's result rows of each.
 */
function replay(sides: readonly WasmKernel[][], logs: Call[][], rows?: Float64Array[][]): [number, number] {
  const spent = [0, 0];
  let picks = 0;
  let flip = 0;
  logs.forEach((calls, l) => {
    for (const call of calls) {
      if (call.op === "load" || call.op === "loads") {
        for (const side of sides) call.op === "load" ? side[l].loadSnapshot(call.snap) : side[l].updateLoads(call.snap);
        continue;
      }
      if (call.op !== "pick") continue;
      flip ^= 1;
      for (const s of flip ? [0, 1] : [1, 0]) {
        const before = process.cpuUsage();
        const out = sides[s][l].pickRows(call.requests);
        const used = process.cpuUsage(before);
        spent[s] += used.user + used.system;
        rows?.[s].push(out);
      }
      picks += call.requests.length;
    }
  });
  return [spent[0] / picks, spent[1] / picks];
}

function differingValues(a: Float64Array[], b: Float64Array[]): number {
  let differ = 0;
  a.forEach((rows, i) => rows.forEach((x, j) => (differ += Object.is(x, b[i][j]) ? 0 : 1)));
  return differ;
}

note(`bench:kernel-ab: A ${aPath}, B ${bPath}, ${ROUNDS} rounds`);
for (const [name, levels] of [
  ["stream-three-pools", ["high", "medium", "low"]],
  ["stream-one-pool", ["high"]],
] as const) {
  const logs = await record([...levels]);
  const batches = logs.flatMap((calls) => calls.filter((c) => c.op === "pick").map((c) => (c as Extract<Call, { op: "pick" }>).requests.length));
  const rows: Float64Array[][] = [[], []];
  replay([kernelsFor(modules[0], logs), kernelsFor(modules[1], logs)], logs, rows);
  const differ = differingValues(rows[0], rows[1]);
  const us: [number[], number[]] = [[], []];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const sides = [kernelsFor(modules[0], logs), kernelsFor(modules[1], logs)];
    // The first pass warms the new instances up and is not counted.
    replay(sides, logs);
    let a = 0;
    let b = 0;
    for (let k = 0; k < 3; k++) {
      const [x, y] = replay(sides, logs);
      a += x / 3;
      b += y / 3;
    }
    us[0].push(a);
    us[1].push(b);
    ratios.push(b / a);
  }
  const meanBatch = batches.reduce((s, n) => s + n, 0) / batches.length;
  note(`${name}: ${batches.length} batches of ${meanBatch.toFixed(1)} picks on average; A ${median(us[0]).toFixed(3)} µs a pick, B ${median(us[1]).toFixed(3)}, B/A ${median(ratios).toFixed(3)}; ${differ} result values differ`);
  emit({
    bench: "kernel-ab",
    case: name,
    pool: "64x64",
    batches: batches.length,
    meanBatch: round(meanBatch, 1),
    aUsPerPick: round(median(us[0]), 3),
    bUsPerPick: round(median(us[1]), 3),
    ratio: round(median(ratios), 3),
    ratios: ratios.map((x) => round(x, 3)),
    differingValues: differ,
  });
}
