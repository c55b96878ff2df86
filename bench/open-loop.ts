// An open-loop load generator for bench:rpc: sends POSTs at a fixed rate whatever the answers do, and
// measures each request's latency from its scheduled send time (so a stalled server shows up as
// queueing, not as a lower offered rate). Raw HTTP/1.1 over keep-alive sockets with the request bytes
// built once, so the generator itself is not the bottleneck; one request at a time per connection
// (no pipelining), requests that find every connection busy wait in order, their wait counted. The
// first WARMUP_S seconds run at the same rate unmeasured: a cold server compiles and tiers up its code
// (WASM included) then, which is not the steady state the percentiles are about. Beside the latencies
// it reports how late the generator itself sent the requests that found a connection idle (sendLate…):
// time its own thread lost, to its host or to itself, which the latency of those requests includes.
// Args: url rate durationS body [path, default /v1/pick].
// Prints one JSON object.

import { connect, type Socket } from "node:net";
import { quantile } from "./measure.js";

const [url, rateArg, durationArg, body, path = "/v1/pick"] = process.argv.slice(2);
const rate = Number(rateArg);
const durationS = Number(durationArg);
const CONNECTIONS = 32;
const WARMUP_S = 2;
const total = Math.round(rate * (WARMUP_S + durationS));
const target = new URL(`${url}${path}`);
const request = Buffer.from(
  `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
);

interface Connection {
  socket: Socket;
  /** Scheduled send time of the request awaiting its answer, or -1 when idle. */
  inFlight: number;
  buffer: Buffer;
}

/** Scheduled send times of requests due but not yet sent (every connection was busy). */
const backlog: number[] = [];
let backlogHead = 0;
const idle: Connection[] = [];

function dispatch(c: Connection, scheduledMs: number): void {
  c.inFlight = scheduledMs;
  c.socket.write(request);
}

/** How late each measured request found an idle connection was sent: the generator's own delay. */
const sendLate = new Float64Array(total);
let sendLateCount = 0;

const latencies = new Float64Array(total);
let measured = 0;
let answered = 0;
let errors = 0;
let sent = 0;
let start = 0;
/** The worst latency of requests scheduled in each second, warm-up included (stderr: where a tail comes from). */
const worstPerSecond: number[] = [];

function onData(c: Connection, chunk: Buffer): void {
  c.buffer = c.buffer.length === 0 ? chunk : Buffer.concat([c.buffer, chunk]);
  for (;;) {
    const headerEnd = c.buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const head = c.buffer.subarray(0, headerEnd).toString("latin1");
    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (c.buffer.length < headerEnd + 4 + length) return;
    if (!head.startsWith("HTTP/1.1 200")) errors++;
    c.buffer = c.buffer.subarray(headerEnd + 4 + length);
    const latencyMs = performance.now() - c.inFlight;
    const second = Math.floor((c.inFlight - start) / 1000);
    worstPerSecond[second] = Math.max(worstPerSecond[second] ?? 0, latencyMs);
    if (c.inFlight >= start + WARMUP_S * 1000) latencies[measured++] = latencyMs;
    if (++answered === total) finish();
    if (backlogHead < backlog.length) dispatch(c, backlog[backlogHead++]);
    else {
      c.inFlight = -1;
      idle.push(c);
    }
  }
}

function finish(): void {
  const sorted = latencies.slice(0, measured).sort();
  const late = sendLate.slice(0, sendLateCount).sort();
  process.stderr.write(`open-loop: start ${Math.round(performance.timeOrigin + start)}; worst latency per second (ms): ${worstPerSecond.map((ms) => ms.toFixed(1)).join(" ")}\n`);
  const result = {
    sent,
    measured,
    warmupS: WARMUP_S,
    errors,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    sendLateP50Ms: quantile(late, 0.5),
    sendLateP99Ms: quantile(late, 0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const connections: Connection[] = [];
for (let i = 0; i < CONNECTIONS; i++) {
  const socket = connect(Number(target.port), target.hostname);
  socket.setNoDelay(true);
  const c: Connection = { socket, inFlight: -1, buffer: Buffer.alloc(0) };
  idle.push(c);
  socket.on("data", (chunk) => onData(c, chunk));
  socket.on("error", (err) => {
    process.stderr.write(`open-loop: ${err.message}\n`);
    process.exit(1);
  });
  connections.push(c);
}

/** Sends every request whose scheduled time has come on an idle connection, or queues it. */
function tick(): void {
  const now = performance.now();
  while (sent < total && start + (sent * 1000) / rate <= now) {
    const scheduledMs = start + (sent * 1000) / rate;
    const c = idle.pop();
    if (c !== undefined) {
      dispatch(c, scheduledMs);
      if (scheduledMs >= start + WARMUP_S * 1000) sendLate[sendLateCount++] = performance.now() - scheduledMs;
    } else backlog.push(scheduledMs);
    sent++;
  }
  if (sent >= total) return;
  // Timers fire on a millisecond grid, late by up to a millisecond: every request they send would carry
  // that as latency. Close to the next send time, poll instead (this process has its own core).
  const waitMs = start + (sent * 1000) / rate - performance.now();
  if (waitMs > 2) setTimeout(tick, waitMs - 1.5);
  else setImmediate(tick);
}

let connected = 0;
for (const c of connections) {
  c.socket.once("connect", () => {
    if (++connected === CONNECTIONS) {
      start = performance.now();
      tick();
    }
  });
}
