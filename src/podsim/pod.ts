// One simulated vLLM pod on loopback (`headroom pod-sim`): an OpenAI-compatible HTTP server whose timing
// comes from the cluster simulator's pod models (src/sim/pods.ts) running on the real clock: prompts
// batch under a token budget, decoding is continuous batching with KV admission, every time from the
// latency profile and the pod's own load. /metrics speaks vLLM's names, latency histograms included,
// each observed as vLLM 0.11 observes it (per token or per request).
//
// Disaggregation as llm-d's sidecar does it: a decode pod that receives `x-prefiller-host-port` first
// sends the prompt to that prefill pod (`max_tokens: 1`, `kv_transfer_params.do_remote_decode`), then
// pulls the KV (transfer time from the prompt's bytes over the link) and decodes. Without the header,
// or naming itself, it prefills locally. Responses say who served: `x-pod-sim-decode` (this pod) and
// `x-pod-sim-prefill` (the pod that prefilled). A decode pod given a report URL posts each finished
// request's completion report (`POST /v1/report`) to headroom, as a gateway would.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { PacedClock, type Clock } from "../clock.js";
import type { LatencyProfile } from "../predictors/latency-profile.js";
import { tpSpeedup } from "../predictors/profile.js";
import { DecodePod, PrefillPod, type Job, type PodRuntime } from "../sim/pods.js";
import type { SimRequest } from "../sim/workload.js";

export type PodSimRole = "prefill" | "decode" | "both";

export interface PodSimSpec {
  name: string;
  role: PodSimRole;
  /** 0 or absent: any free port. */
  port?: number;
  tp?: number;
  /** The pod's compute takes this many times what the profile says (1.5 = 50 % slower). */
  prefillTimeFactor?: number;
  decodeTimeFactor?: number;
}

export interface PodSimEnvironment {
  host: string;
  profile: LatencyProfile;
  model: string;
  tpEfficiency: number;
  gpuMemoryUtilization: number;
  prefillTokenBudget: number;
  /** KV pulled from a prefill pod: overhead + bytes / bandwidth (the rack link of the simulator). */
  transferOverheadMs: number;
  bandwidthGBps: number;
  /** headroom's `POST /v1/report` URL; absent: no reports. */
  reportUrl?: string;
  clock?: Clock;
}

/** Bodies beyond this are refused (413). */
const MAX_BODY_BYTES = 1024 * 1024;
const DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES;
/** Characters per prompt token: the usual estimate for English text with a BPE tokenizer. */
const CHARS_PER_TOKEN = 4;
const DEFAULT_MAX_TOKENS = 16;
/** A prefill pod that does not answer within this is a failed prefill (502). */
const PREFILL_TIMEOUT_MS = 30_000;
/** vLLM's bucket bounds (seconds). */
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const KV_BLOCK_TOKENS = 16;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a completion request asks for, from an OpenAI body. */
interface Ask {
  chat: boolean;
  prompt: string;
  inputTokens: number;
  maxTokens: number;
  stream: boolean;
  prefillOnly: boolean;
}

export class SimulatedPod {
  readonly spec: Required<PodSimSpec>;
  private readonly server: Server;
  private readonly prefillModel: PrefillPod | null;
  private readonly decodeModel: DecodePod | null;
  private readonly clock: Clock;
  private readonly registry = new Registry();
  private readonly ttft: Histogram;
  /** Per token: the gap before each token after a request's first, under its old and its new name. */
  private readonly tokenGaps: Histogram[];
  /** Per request: its mean gap between tokens. */
  private readonly requestTpot: Histogram;
  private readonly e2e: Histogram;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly successes: Counter<"finished_reason">;
  private sequence = 0;
  private port = 0;
  /** Reports headroom refused or that could not be sent. */
  reportFailures = 0;
  /** Requests this pod prefilled (prefill-only requests from decode pods and its own local prefills). */
  prefilled = 0;

  constructor(
    spec: PodSimSpec,
    private readonly env: PodSimEnvironment,
  ) {
    this.spec = { port: 0, tp: 1, prefillTimeFactor: 1, decodeTimeFactor: 1, ...spec };
    this.clock = env.clock ?? new PacedClock();
    const runtime: PodRuntime = {
      spec: {
        name: this.spec.name,
        address: this.spec.name,
        role: this.spec.role === "prefill" ? "prefill" : "decode",
        rack: "r0",
        node: this.spec.name,
        tp: this.spec.tp,
        profile: env.profile.name,
        prefillTimeFactor: this.spec.prefillTimeFactor,
        decodeTimeFactor: this.spec.decodeTimeFactor,
      },
      profile: env.profile,
      speedup: tpSpeedup(this.spec.tp, env.tpEfficiency),
      kvCapacityTokens: env.profile.kvCapacityTokens(this.spec.tp, env.gpuMemoryUtilization),
    };
    const finished = (job: Job) => (job as PodJob).settle();
    this.prefillModel = this.spec.role === "decode" ? null : new PrefillPod(runtime, env.prefillTokenBudget, this.clock, finished);
    this.decodeModel = this.spec.role === "prefill" ? null : new DecodePod(runtime, this.clock, finished);

    const labels = { model_name: env.model, engine: "0" };
    const labelNames = Object.keys(labels);
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({ name, help, labelNames, registers: [this.registry], collect: function () { this.set(labels, value()); } });
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", () => this.gauges().waiting);
    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", () => this.gauges().running);
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", () => this.gauges().kvUsage);
    const blocks = Math.floor(runtime.kvCapacityTokens / KV_BLOCK_TOKENS);
    new Gauge({
      name: "vllm:cache_config_info",
      help: "Information of the LLMEngine CacheConfig",
      labelNames: ["block_size", "num_gpu_blocks", "engine"],
      registers: [this.registry],
    }).set({ block_size: String(KV_BLOCK_TOKENS), num_gpu_blocks: String(blocks), engine: "0" }, 1);
    // vLLM binds its labels at start, so each histogram is on the page, at zero, before any request
    // (a scraper never sees one histogram stand in for another that has not been observed yet).
    const histogram = (name: string, help: string, buckets: number[]) => {
      const h = new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
      h.zero(labels);
      return h;
    };
    this.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS);
    this.tokenGaps = [
      histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds (deprecated for vllm:inter_token_latency_seconds).", TPOT_BUCKETS),
      histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", TPOT_BUCKETS),
    ];
    this.requestTpot = histogram("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", TPOT_BUCKETS);
    this.e2e = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS);
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers: [this.registry] });
    this.promptTokens = counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.");
    this.generationTokens = counter("vllm:generation_tokens_total", "Number of generation tokens processed.");
    this.successes = new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: [...labelNames, "finished_reason"],
      registers: [this.registry],
    });
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /** host:port, once listening. */
  get address(): string {
    return `${this.env.host}:${this.port}`;
  }

  get metricsUrl(): string {
    return `http://${this.address}/metrics`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.spec.port, this.env.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and drops open connections (requests in flight are cut). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** What /metrics reports: both models' queues; KV from the decode side when there is one. */
  gauges(): { waiting: number; running: number; kvUsage: number } {
    const p = this.prefillModel?.gauges();
    const d = this.decodeModel?.gauges();
    return {
      waiting: (p?.waiting ?? 0) + (d?.waiting ?? 0),
      running: (p?.running ?? 0) + (d?.running ?? 0),
      kvUsage: (d ?? p)!.kvUsage,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (req.method === "GET" && path === "/metrics") {
        res.writeHead(200, { "content-type": this.registry.contentType });
        res.end(await this.registry.metrics());
      } else if (req.method === "GET" && path === "/health") {
        res.writeHead(200).end();
      } else if (req.method === "GET" && path === "/v1/models") {
        sendJson(res, 200, { object: "list", data: [{ id: this.env.model, object: "model", owned_by: "headroom-pod-sim" }] });
      } else if (path === "/v1/completions" || path === "/v1/chat/completions") {
        if (req.method !== "POST") throw new HttpError(405, `${path} takes POST`);
        await this.complete(req, res, path === "/v1/chat/completions");
      } else {
        throw new HttpError(404, `no route ${req.method} ${path}`);
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: { message: (err as Error).message, type: status < 500 ? "invalid_request_error" : "server_error", code: status } });
      else res.destroy();
    }
  }

  private async complete(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    const ask = parseAsk(await readBody(req), chat);
    const requestId = header(req, "x-request-id") ?? `${this.spec.name}-${++this.sequence}`;
    if (ask.prefillOnly) return this.prefillOnly(ask, requestId, res);
    if (this.decodeModel === null) throw new HttpError(400, `${this.spec.name} is a prefill pod: it takes only prefill requests (kv_transfer_params.do_remote_decode)`);
    const prefiller = header(req, "x-prefiller-host-port");
    const remote = prefiller !== undefined && prefiller !== "" && prefiller !== this.address;
    const arrivalMs = this.clock.nowMs();
    let transferMs = 0;
    if (remote) {
      await this.remotePrefill(prefiller, ask, requestId);
      transferMs = this.env.transferOverheadMs + (ask.inputTokens * this.env.profile.hardware.kvBytesPerToken) / (this.env.bandwidthGBps * 1e6);
    } else {
      this.prefilled++;
    }
    const job = new PodJob(request(requestId, ask, arrivalMs), remote ? 0 : -1, arrivalMs, transferMs);
    const headers = {
      "x-request-id": requestId,
      "x-pod-sim-decode": this.address,
      "x-pod-sim-prefill": remote ? prefiller : this.address,
    };
    const created = Math.floor(Date.now() / 1000);
    const id = `cmpl-${requestId}`;
    const object = chat ? "chat.completion" : "text_completion";
    let sent = 0;
    let lastTokenMs = 0;
    job.onToken = () => {
      const now = this.clock.nowMs();
      if (sent > 0) this.observeTokenGap(now - lastTokenMs);
      lastTokenMs = now;
      sent++;
      if (ask.stream && !res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(chunk(id, created, this.env.model, chat, token(sent), null))}\n\n`);
    };
    if (ask.stream) {
      res.writeHead(200, { ...headers, "content-type": "text/event-stream", "cache-control": "no-cache" });
      await job.run(this.decodeModel);
      const finishReason = "length";
      if (!res.writableEnded && !res.destroyed) {
        res.write(`data: ${JSON.stringify({ ...chunk(id, created, this.env.model, chat, "", finishReason), usage: usage(ask.inputTokens, ask.maxTokens) })}\n\n`);
        res.end("data: [DONE]\n\n");
      }
    } else {
      await job.run(this.decodeModel);
      const text = Array.from({ length: ask.maxTokens }, (_, i) => token(i + 1)).join("");
      const choice = chat ? { index: 0, message: { role: "assistant", content: text }, finish_reason: "length" } : { index: 0, text, finish_reason: "length" };
      sendJson(res, 200, { id, object, created, model: this.env.model, choices: [choice], usage: usage(ask.inputTokens, ask.maxTokens) }, headers);
    }
    this.finished(job, requestId);
  }

  /** A decode pod's request for the prompt's KV: runs the prefill only, answers with one token. */
  private async prefillOnly(ask: Ask, requestId: string, res: ServerResponse): Promise<void> {
    if (this.prefillModel === null) throw new HttpError(400, `${this.spec.name} is a decode pod: it does not take prefill requests`);
    const arrivalMs = this.clock.nowMs();
    const job = new PodJob(request(requestId, ask, arrivalMs), 0, arrivalMs, 0);
    await job.run(this.prefillModel);
    this.prefilled++;
    const labels = { model_name: this.env.model, engine: "0" };
    this.promptTokens.inc(labels, ask.inputTokens);
    this.ttft.observe(labels, (job.prefillDoneMs! - arrivalMs) / 1000);
    // One token, so no gap between tokens: vLLM records a TPOT of 0 for such a request.
    this.requestTpot.observe(labels, 0);
    const [host, port] = splitHostPort(this.address);
    sendJson(
      res,
      200,
      {
        id: `cmpl-${requestId}`,
        object: ask.chat ? "chat.completion" : "text_completion",
        created: Math.floor(Date.now() / 1000),
        model: this.env.model,
        choices: [ask.chat ? { index: 0, message: { role: "assistant", content: token(1) }, finish_reason: "length" } : { index: 0, text: token(1), finish_reason: "length" }],
        usage: usage(ask.inputTokens, 1),
        kv_transfer_params: { do_remote_prefill: true, remote_engine_id: this.spec.name, remote_host: host, remote_port: port, prefill_ms: job.prefillDoneMs! - arrivalMs },
      },
      { "x-request-id": requestId, "x-pod-sim-prefill": this.address },
    );
  }

  private async remotePrefill(prefiller: string, ask: Ask, requestId: string): Promise<void> {
    const path = ask.chat ? "/v1/chat/completions" : "/v1/completions";
    const body = ask.chat
      ? { model: this.env.model, messages: [{ role: "user", content: ask.prompt }], max_tokens: 1, stream: false, kv_transfer_params: { do_remote_decode: true } }
      : { model: this.env.model, prompt: ask.prompt, max_tokens: 1, stream: false, kv_transfer_params: { do_remote_decode: true } };
    let response: Response;
    try {
      response = await fetch(`http://${prefiller}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": requestId },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(PREFILL_TIMEOUT_MS),
      });
    } catch (err) {
      throw new HttpError(502, `prefill pod ${prefiller} did not answer: ${(err as Error).message}`);
    }
    const text = await response.text();
    if (!response.ok) throw new HttpError(502, `prefill pod ${prefiller} answered ${response.status}: ${text.slice(0, 200)}`);
  }

  private observeTokenGap(ms: number): void {
    const labels = { model_name: this.env.model, engine: "0" };
    for (const h of this.tokenGaps) h.observe(labels, ms / 1000);
  }

  private finished(job: PodJob, requestId: string): void {
    const labels = { model_name: this.env.model, engine: "0" };
    const ttftMs = job.firstTokenMs! - job.req.arrivalMs;
    const tpotMs = job.req.outputTokens > 1 ? (job.doneMs! - job.firstTokenMs!) / (job.req.outputTokens - 1) : undefined;
    this.ttft.observe(labels, ttftMs / 1000);
    // As vLLM does, 0 for a request of one token (it has no gap between tokens).
    this.requestTpot.observe(labels, (tpotMs ?? 0) / 1000);
    this.e2e.observe(labels, (job.doneMs! - job.req.arrivalMs) / 1000);
    if (job.prefill < 0) this.promptTokens.inc(labels, job.req.inputTokens);
    this.generationTokens.inc(labels, job.req.outputTokens);
    this.successes.inc({ ...labels, finished_reason: "length" });
    if (this.env.reportUrl === undefined) return;
    const report = { requestId, ok: true, ttftMs, tpotMs, inputTokens: job.req.inputTokens, outputTokens: job.req.outputTokens, decode: this.address };
    fetch(this.env.reportUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(report), signal: AbortSignal.timeout(5000) })
      .then((r) => {
        if (!r.ok) this.reportFailures++;
        return r.arrayBuffer();
      })
      .catch(() => this.reportFailures++);
  }
}

/** A request's life in one pod's model, with a promise for its end. */
class PodJob implements Job {
  prefillStartMs?: number;
  prefillDoneMs?: number;
  admittedMs?: number;
  firstTokenMs?: number;
  doneMs?: number;
  onToken?: () => void;
  readonly decode = 0;
  private done: () => void = () => {};

  constructor(
    readonly req: SimRequest,
    /** -1: the decode model prefills locally; otherwise the prompt's KV comes from elsewhere. */
    readonly prefill: number,
    readonly dispatchMs: number,
    readonly transferMs: number,
  ) {}

  run(model: PrefillPod | DecodePod): Promise<void> {
    return new Promise((resolve) => {
      this.done = resolve;
      model.enqueue(this);
    });
  }

  settle(): void {
    this.done();
  }
}

function request(id: string, ask: Ask, arrivalMs: number): SimRequest {
  return { id, index: 0, arrivalMs, inputTokens: ask.inputTokens, outputTokens: ask.prefillOnly ? 1 : ask.maxTokens, sloLevel: "", sloTtftMs: Infinity, sloTpotMs: Infinity, seed: 0 };
}

function parseAsk(raw: string, chat: boolean): Ask {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "the body is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, "the body must be a JSON object");
  const b = body as Record<string, unknown>;
  let prompt: string;
  if (chat) {
    if (!Array.isArray(b.messages) || b.messages.length === 0) throw new HttpError(400, "messages must be a non-empty array");
    prompt = b.messages
      .map((m, i) => {
        const content = (m as { content?: unknown } | null)?.content;
        if (typeof content !== "string") throw new HttpError(400, `messages[${i}].content must be a string`);
        return content;
      })
      .join("\n");
  } else {
    if (typeof b.prompt === "string") prompt = b.prompt;
    else if (Array.isArray(b.prompt) && b.prompt.every((p) => typeof p === "string")) prompt = (b.prompt as string[]).join("");
    else throw new HttpError(400, "prompt must be a string or an array of strings");
  }
  const maxRaw = b.max_tokens ?? b.max_completion_tokens ?? DEFAULT_MAX_TOKENS;
  if (typeof maxRaw !== "number" || !Number.isInteger(maxRaw) || maxRaw < 1 || maxRaw > 65_536) throw new HttpError(400, "max_tokens must be an integer from 1 to 65536");
  if (b.stream !== undefined && typeof b.stream !== "boolean") throw new HttpError(400, "stream must be a boolean");
  const kv = b.kv_transfer_params as { do_remote_decode?: unknown } | undefined;
  return {
    chat,
    prompt,
    inputTokens: Math.max(1, Math.ceil(prompt.length / CHARS_PER_TOKEN)),
    maxTokens: maxRaw,
    stream: b.stream === true,
    prefillOnly: kv !== null && typeof kv === "object" && kv.do_remote_decode === true,
  };
}

/**
 * The body, up to MAX_BODY_BYTES. A longer one is read on and dropped so that the client gets its 413;
 * one that goes on past DRAIN_LIMIT_BYTES loses its connection instead.
 */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_LIMIT_BYTES) req.destroy();
      else if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () => (size > MAX_BODY_BYTES ? reject(new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes`)) : resolve(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function chunk(id: string, created: number, model: string, chat: boolean, text: string, finishReason: string | null): Record<string, unknown> {
  const choice = chat ? { index: 0, delta: text === "" ? {} : { content: text }, finish_reason: finishReason } : { index: 0, text, finish_reason: finishReason };
  return { id, object: chat ? "chat.completion.chunk" : "text_completion", created, model, choices: [choice] };
}

function usage(prompt: number, completion: number): Record<string, number> {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The simulated model's k-th output token. */
function token(k: number): string {
  return ` t${k}`;
}

function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(":");
  return [address.slice(0, at), Number(address.slice(at + 1))];
}
