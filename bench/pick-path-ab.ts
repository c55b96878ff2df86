// Two builds of headroom against each other on bench:pick-path's HTTP cases, in one process: their
// engines run alternating rounds of 150 ms, so the host's swings (CPU steal on this VM moves a single
// run's figures by a third) fall on both alike, and the median of the paired ratios is reported. The
// two share one heap, so a change that only moves garbage-collection costs shows less here than alone.
// Run it both ways (A B, then B A): a build against itself gives ratios within about 4 % of 1.
// Args: <root A> <root B> [rounds], each a checkout with `npm run build` done (this one is `.`); for
// the previous commit: `git worktree add /tmp/prev HEAD~1 && ln -s $PWD/node_modules /tmp/prev/ &&
// (cd /tmp/prev && npm run build)`. One JSON line per case on stdout.

import { resolve } from "node:path";
import { Registry } from "prom-client";
import type { Engine } from "../src/engine/engine.js";
import { cpuUsPerItem, emit, median, note, round } from "./measure.js";
import { httpAtOnceRound, httpQueuedRound, rpcPoolsYaml, streamRound, type PickCodec, type StreamCodec } from "./rpc-workload.js";
import { benchArgs } from "./args.js";

const { positionals } = benchArgs("bench:pick-path-ab", {}, { min: 2, max: 3, usage: "<root A> <root B> [rounds]" });
const [rootA, rootB] = positionals.slice(0, 2).map((root) => resolve(root));
const ROUNDS = Number(positionals[2] ?? 60);
const ROUND_MS = 150;
const WARM_ROUNDS = 4;

interface Build {
  engines: Record<16 | 64, Engine>;
  codec: PickCodec & StreamCodec;
}

/** A build's engines on bench:pick-path's 16x16 and 64x64 pools, with that build's codec. */
async function load(root: string): Promise<Build> {
  const at = (path: string) => import(`${root}/dist/src/${path}`);
  const { parseConfig } = await at("config/load.js");
  const { Engine } = await at("engine/engine.js");
  const { silentLogger } = await at("log.js");
  const codec = (await at("server/codec.js")) as PickCodec & StreamCodec;
  const engineFor = async (n: number): Promise<Engine> => {
    const engine: Engine = await Engine.create({ config: parseConfig(rpcPoolsYaml(n)).config, logger: silentLogger, registry: new Registry() });
    engine.start();
    return engine;
  };
  return { engines: { 16: await engineFor(16), 64: await engineFor(64) }, codec };
}

const a = await load(rootA);
const b = await load(rootB);
// The cases of bench:pick-path of the same names: path-http as the server queues HTTP picks.
for (const [name, n, step] of [
  ["path-http", 16, httpQueuedRound],
  ["path-http-at-once", 16, httpAtOnceRound],
  ["path-stream", 64, streamRound],
] as const) {
  const [usA, usB, ratios]: number[][] = [[], [], []];
  for (let r = 0; r < ROUNDS; r++) {
    const x = await cpuUsPerItem(() => step(a.engines[n], a.codec), ROUND_MS);
    const y = await cpuUsPerItem(() => step(b.engines[n], b.codec), ROUND_MS);
    if (r < WARM_ROUNDS) continue;
    usA.push(x);
    usB.push(y);
    ratios.push(y / x);
  }
  note(`${name}: B/A CPU per pick, median ${median(ratios).toFixed(3)} over ${ratios.length} paired rounds`);
  emit({ bench: "pick-path-ab", case: name, a: rootA, b: rootB, cpuUsPerPickA: round(median(usA), 2), cpuUsPerPickB: round(median(usB), 2), ratioBoverA: round(median(ratios), 3) });
}
for (const build of [a, b]) for (const engine of Object.values(build.engines)) await engine.close();
