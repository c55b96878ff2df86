// A WebSocket load generator for bench:rpc: msgpack frames of 64 different picks over WS /v1/stream,
// a few frames in flight, for a fixed time. Like a gateway, it reports each answered frame's requests
// as completed (one report frame per pick frame, sent when the answer arrives), so headroom's in-flight
// load stays the size a serving cluster's would instead of growing for the whole run. Args: wsUrl
// durationS [--no-reports] [--one-pool] (every pick on the medium pool, not all three) [--in-flight F]
// (frames sent and not yet answered; 4 unless given). Prints one JSON object, with its own CPU time
// during the load as cpuPct. Runs with --experimental-websocket (Node 20's WebSocket client).

import { pack, unpack } from "msgpackr";
import { quantile } from "./measure.js";
import { pickFrames, PICKS_PER_FRAME } from "./rpc-workload.js";

const [url, durationArg] = process.argv.slice(2);
const reports = !process.argv.includes("--no-reports");
const durationS = Number(durationArg);
const inFlightAt = process.argv.indexOf("--in-flight");
const IN_FLIGHT = inFlightAt < 0 ? 4 : Number(process.argv[inFlightAt + 1]);
if (!Number.isInteger(IN_FLIGHT) || IN_FLIGHT < 1) throw new Error(`--in-flight: a whole number of frames >= 1, got ${process.argv[inFlightAt + 1]}`);
const frames = pickFrames(process.argv.includes("--one-pool") ? ["medium"] : undefined);

/** This process's CPU time since the load began, in % of one core over `elapsedS`. */
function cpuPct(elapsedS: number): number {
  const { user, system } = process.cpuUsage(cpuAtStart);
  return Math.round((user + system) / (elapsedS * 1e4));
}

const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const sentAt: number[] = [];
const frameMs: number[] = [];
let next = 0;
let answered = 0;
let errors = 0;
let stopping = false;
const start = performance.now();
const cpuAtStart = process.cpuUsage();

function sendOne(): void {
  sentAt.push(performance.now());
  ws.send(frames[next++ % frames.length]);
}

ws.onopen = () => {
  for (let i = 0; i < IN_FLIGHT; i++) sendOne();
};
let reported = 0;
ws.onmessage = (event) => {
  const msg = unpack(new Uint8Array(event.data as ArrayBuffer)) as { t: string; items: { requestId?: string; error?: unknown }[]; known?: number };
  if (msg.t === "reported") {
    reported += msg.known ?? 0;
    return;
  }
  if (msg.t !== "picked") {
    errors++;
    return;
  }
  frameMs.push(performance.now() - sentAt[answered++]);
  const done: { requestId: string; ok: true }[] = [];
  for (const item of msg.items) {
    if (item.error) errors++;
    else if (item.requestId !== undefined) done.push({ requestId: item.requestId, ok: true });
  }
  if (reports && done.length > 0) ws.send(pack({ t: "report", items: done }));
  if (performance.now() - start >= durationS * 1000) stopping = true;
  if (!stopping) sendOne();
  else if (answered === next) {
    const elapsedS = (performance.now() - start) / 1000;
    frameMs.sort((a, b) => a - b);
    process.stdout.write(
      `${JSON.stringify({ frames: answered, picks: answered * PICKS_PER_FRAME, reported, picksPerS: (answered * PICKS_PER_FRAME) / elapsedS, frameP50Ms: quantile(frameMs, 0.5), frameP99Ms: quantile(frameMs, 0.99), errors, cpuPct: cpuPct(elapsedS) })}\n`,
    );
    ws.close();
  }
};
ws.onerror = (event) => {
  process.stderr.write(`WebSocket error: ${String((event as ErrorEvent).message ?? event)}\n`);
  process.exit(1);
};
