// npm run soak (not in CI): the embedded demo (simulated pods scraped by headroom) under steady load for
// --minutes (default 10): gateway-style picks each followed by the completion on the chosen pods (which
// report back), plus msgpack WebSocket pick frames whose picks are reported at once. Every 10 s a JSON
// line with RSS, heap, event-loop delay (p50, p99, max) and in-flight entries; at the end a summary: RSS
// and heap growth from the second minute to the last, errors, and the handles left after closing.
// Exit 1 when RSS grew more than the stated bound or handles leaked.

import { monitorEventLoopDelay } from "node:perf_hooks";
import { pack, unpack } from "msgpackr";
import { silentLogger } from "../src/log.js";
import { startServing } from "../src/serve.js";
import { emit, note, round } from "./measure.js";
import { benchArgs } from "./args.js";

const { values: args } = benchArgs("soak", { minutes: { type: "string", value: "N" } });
const minutes = args.minutes !== undefined ? Number(args.minutes) : 10;
/** RSS may grow this much from the second minute to the last (allocator noise, JIT code, histograms). */
const RSS_GROWTH_BOUND_MB = 64;
const PICKS_PER_S = 100;
const FRAMES_PER_S = 20;

const resourcesBefore = process.getActiveResourcesInfo().length;
const serving = await startServing({ port: 0, out: { write: () => true }, logger: silentLogger });
const base = `http://127.0.0.1:${serving.port}`;
const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
const errors: Record<string, number> = {};
const count = (what: string) => (errors[what] = (errors[what] ?? 0) + 1);
let completions = 0;
let streamed = 0;

/** A gateway's two steps and the pod's report: pick, then the completion on the chosen pair. */
async function gatewayRequest(i: number): Promise<void> {
  const level = ["high", "medium", "low"][i % 3];
  const pick = await fetch(`${base}/v1/gateway/pick`, { headers: { "x-slo-level": level, "x-prompt-tokens": String(200 + (i % 7) * 150) } });
  await pick.arrayBuffer();
  if (pick.status !== 200) return void count(`pick_${pick.status}`);
  const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": pick.headers.get("x-headroom-request-id")! };
  const prefill = pick.headers.get("x-prefiller-host-port");
  if (prefill) headers["x-prefiller-host-port"] = prefill;
  const res = await fetch(`http://${pick.headers.get("x-gateway-destination-endpoint")}/v1/completions`, {
    method: "POST",
    headers,
    body: JSON.stringify({ prompt: "s".repeat(800 + (i % 7) * 600), max_tokens: 16 + (i % 5) * 8 }),
  });
  await res.arrayBuffer();
  if (res.status !== 200) count(`completion_${res.status}`);
  else completions++;
}

const ws = new WebSocket(`ws://127.0.0.1:${serving.port}/v1/stream`);
ws.binaryType = "arraybuffer";
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = reject;
});
ws.onmessage = (event) => {
  const msg = unpack(new Uint8Array(event.data as ArrayBuffer)) as { t: string; items?: { requestId?: string; error?: unknown }[] };
  if (msg.t !== "picked") return;
  const done = (msg.items ?? []).filter((it) => it.requestId !== undefined && it.error === undefined).map((it) => ({ requestId: it.requestId, ok: true }));
  streamed += done.length;
  if (done.length < (msg.items ?? []).length) count("stream_item_error");
  ws.send(pack({ t: "report", items: done }));
};
const frame = pack({ t: "pick", items: Array.from({ length: 16 }, (_, k) => ({ sloLevel: ["high", "medium", "low"][k % 3], inputTokens: 300 + k * 100, maxTokens: 64 })) });

const started = performance.now();
const endAt = started + minutes * 60_000;
let sent = 0;
let frames = 0;
const inFlight = new Set<Promise<void>>();
const samples: { t: number; rssMb: number; heapMb: number }[] = [];
const sample = () => {
  const m = process.memoryUsage();
  const t = Math.round((performance.now() - started) / 1000);
  const s = { t, rssMb: round(m.rss / 2 ** 20, 1), heapMb: round(m.heapUsed / 2 ** 20, 1) };
  samples.push(s);
  const state = serving.engine.state() as { inflight?: { entries?: number } };
  emit({ bench: "soak", ...s, eldP50Ms: round(eld.percentile(50) / 1e6, 2), eldP99Ms: round(eld.percentile(99) / 1e6, 2), eldMaxMs: round(eld.max / 1e6, 1), completions, streamed, inflight: state.inflight?.entries ?? null });
  eld.reset();
};
const sampler = setInterval(sample, 10_000);
note(`soak: ${minutes} min, ${PICKS_PER_S} gateway requests/s and ${FRAMES_PER_S} frames of 16 picks/s`);
while (performance.now() < endAt) {
  const due = Math.floor(((performance.now() - started) * PICKS_PER_S) / 1000);
  while (sent < due) {
    const p = gatewayRequest(sent++)
      .catch((err: Error) => void count(err.name))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  const framesDue = Math.floor(((performance.now() - started) * FRAMES_PER_S) / 1000);
  while (frames < framesDue) {
    ws.send(frame);
    frames++;
  }
  await new Promise((r) => setTimeout(r, 10));
}
clearInterval(sampler);
await Promise.all([...inFlight]);
sample();
ws.close();
await new Promise((r) => setTimeout(r, 200));
eld.disable();
await serving.close();
await new Promise((r) => setTimeout(r, 500));
const leftover = process.getActiveResourcesInfo();
const secondMinute = samples.find((s) => s.t >= 60) ?? samples[0];
const last = samples[samples.length - 1];
const rssGrowthMb = round(last.rssMb - secondMinute.rssMb, 1);
const leaked = leftover.length - resourcesBefore;
emit({
  bench: "soak",
  summary: true,
  minutes,
  gatewayRequests: sent,
  completions,
  streamedPicks: streamed,
  errors,
  rssFromMinute2Mb: secondMinute.rssMb,
  rssLastMb: last.rssMb,
  rssGrowthMb,
  rssGrowthBoundMb: RSS_GROWTH_BOUND_MB,
  heapGrowthMb: round(last.heapMb - secondMinute.heapMb, 1),
  handlesLeft: leaked,
  handles: leftover,
});
process.exitCode = rssGrowthMb > RSS_GROWTH_BOUND_MB || leaked > 0 ? 1 : 0;
