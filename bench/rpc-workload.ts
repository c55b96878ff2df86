// What bench:rpc serves and sends, shared by its server, its WebSocket generator and the in-process
// pick-path measurement: three pools of n prefill x n decode unscraped pods over two racks and four
// nodes, the HTTP pick body, and 16 msgpack frames of 64 different picks across the three pools.

import { pack } from "msgpackr";
import type { EngineApi, PickAnswer, PickAnswers } from "../src/engine/types.js";
import type * as Codec from "../src/server/codec.js";
import { NO_SLO_HEADERS } from "../src/server/codec.js";

export const PICK_BODY = JSON.stringify({ sloLevel: "medium", inputTokens: 1500, maxTokens: 200, prefixHit: 0.1 });
export const PICKS_PER_FRAME = 64;

export interface RpcPoolsOptions {
  /** Every pool's planner ticking each second with ARIMA. */
  busyPlanners?: boolean;
  /**
   * Kernel worker threads taking every batch instead of the main thread (0, the default: none), or
   * "product": no workers section, so the product's defaults (src/config/schema.ts) decide.
   */
  workers?: number | "product";
  /** Batches each worker thread holds at once (workers.queuePerThread; absent: the default). */
  workerQueue?: number;
  /** The worker threads' nice value (workers.nice; absent: the default). */
  workerNice?: number;
}

export function rpcPoolsYaml(n: number, options: RpcPoolsOptions = {}): string {
  const fields: string[] = [];
  if (options.workers !== "product") fields.push(`threads: ${options.workers ?? 0}`);
  if (typeof options.workers === "number" && options.workers > 0) fields.push("inlineBelowPairs: 0");
  if (options.workerQueue !== undefined) fields.push(`queuePerThread: ${options.workerQueue}`);
  if (options.workerNice !== undefined) fields.push(`nice: ${options.workerNice}`);
  const workers = fields.length > 0 ? `workers: { ${fields.join(", ")} }\n` : "";
  const planner = options.busyPlanners ? "\n    planner: { adjustmentIntervalMs: 1000, loadPredictor: arima }" : "";
  const pods = (pool: number) =>
    Array.from({ length: n }, (_, i) => [
      `      - { address: "10.${pool}.0.${i + 1}:8000", role: prefill, rack: r${i % 2}, node: n${i % 4} }`,
      `      - { address: "10.${pool}.1.${i + 1}:8000", role: decode, rack: r${i % 2}, node: n${i % 4} }`,
    ]).flat();
  return `
topology: { kvBytesPerToken: 131072 }
${workers}server: { maxInflightPerConnection: 4096 }
pools:
${["high", "medium", "low"].map((level, p) => `  - sloLevel: ${level}${planner}\n    pods:\n${pods(p).join("\n")}`).join("\n")}
`;
}

/** 16 frames `{"t":"pick","items":[…64]}`: ISLs (256–8,255), OSLs and the levels given vary item by item. */
export function pickFrames(levels: readonly string[] = ["high", "medium", "low"]): Uint8Array[] {
  return Array.from({ length: 16 }, (_, f) =>
    pack({
      t: "pick",
      items: Array.from({ length: PICKS_PER_FRAME }, (_, k) => ({
        sloLevel: levels[(f + k) % levels.length],
        inputTokens: 256 + (((f * PICKS_PER_FRAME + k) * 97) % 8000),
        maxTokens: 64 + (k % 7) * 50,
        seed: f * PICKS_PER_FRAME + k,
      })),
    }),
  );
}

/** The codec functions a pick round uses: passed in, so that a round can run another build's codec. */
export type PickCodec = Pick<typeof Codec, "decodeBody" | "decodePick" | "encodePickAnswer">;
/** The codec functions a stream round uses. */
export type StreamCodec = Pick<typeof Codec, "decodeFrame" | "decodePick" | "decodeReportItems" | "compactPick" | "encodeMsgpack">;

const PICK_BODY_BYTES = Buffer.from(PICK_BODY);

/**
 * 32 HTTP pick bodies decoded, each run at once as a batch of its own (`pickBatch`) and its answer
 * encoded as JSON, never reported (as wrk does); then a loop turn, as between wrk's rounds of requests,
 * so that timers (refresh, expiry) run. Returns 32.
 */
export async function httpAtOnceRound(engine: EngineApi, codec: PickCodec): Promise<number> {
  for (let c = 0; c < 32; c++) {
    engine.pickBatch([codec.decodePick(codec.decodeBody(PICK_BODY_BYTES, "json"))], ([answer]) => void codec.encodePickAnswer(answer as PickAnswer, "json"));
  }
  await new Promise(setImmediate);
  return 32;
}

/**
 * 32 HTTP pick bodies decoded and queued as the server's POST /v1/pick queues them (`pickQueued`; an
 * older build's promise-returning `pick` where it has no `pickQueued`, so that bench:pick-path-ab can
 * compare them), each answer encoded as JSON as its batch ends, never reported. Resolves with 32.
 */
export function httpQueuedRound(engine: EngineApi, codec: PickCodec): Promise<number> {
  return new Promise((resolve) => {
    let left = 32;
    const answered = ([answer]: PickAnswers) => {
      codec.encodePickAnswer(answer as PickAnswer, "json");
      if (--left === 0) resolve(32);
    };
    for (let c = 0; c < 32; c++) {
      const inputs = [codec.decodePick(codec.decodeBody(PICK_BODY_BYTES, "json"))];
      if (typeof engine.pickQueued === "function") engine.pickQueued(inputs, answered);
      else void (engine as Pick<EngineApi, "pick">).pick(inputs).then(answered);
    }
  });
}

const frames = pickFrames();
let nextFrame = 0;

/**
 * One of pickFrames()'s frames as WS /v1/stream takes it: decoded, run at once (`pickBatch`), its
 * answer frame encoded, and its picks reported back in one report frame (as bench/ws-load.ts does);
 * then a loop turn, as each frame is a message event of its own, so that timers run. Resolves with
 * the frame's pick count.
 */
export async function streamRound(engine: EngineApi, codec: StreamCodec): Promise<number> {
  const frame = codec.decodeFrame(frames[nextFrame++ % frames.length]);
  const inputs = frame.items.map((item, i) => codec.decodePick(item, NO_SLO_HEADERS, `items[${i}].`));
  // As WS /v1/stream asks: no fallbacks (a compact item names none). An older build ignores the option.
  engine.pickBatch(
    inputs,
    (answers) => {
      codec.encodeMsgpack({ t: "picked", items: answers.map(codec.compactPick) });
      const done = answers.map((a) => ({ requestId: (a as PickAnswer).requestId, ok: true }));
      const reports = codec.decodeFrame(pack({ t: "report", items: done }));
      engine.report(codec.decodeReportItems(reports.items));
    },
    { fallbacks: false },
  );
  await new Promise(setImmediate);
  return inputs.length;
}
