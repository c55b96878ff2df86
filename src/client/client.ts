// `headroom client`: sends OpenAI completions with an SLO (a level or explicit targets) either through
// a gateway (nginx with deploy/gateway/nginx.conf) or straight through headroom (a gateway pick, then
// the completion on the decode pod it named, with its prefill pod), streams each answer, and says what
// happened: pool, pods, TTFT and TPOT measured from the stream, and whether each met its target.

import { DEFAULTS } from "../config/schema.js";

export interface ClientOptions {
  /** Send through this gateway (its /v1/completions)… */
  gatewayUrl?: string;
  /** …or pick on this headroom and send to the pod itself; with a gateway, only asked for the pool's targets. */
  headroomUrl?: string;
  level?: string;
  ttftMs?: number;
  tpotMs?: number;
  promptTokens: number;
  maxTokens: number;
  count: number;
  concurrency: number;
  chat: boolean;
  timeoutMs: number;
}

export interface ClientResult {
  index: number;
  status: number;
  pool?: string;
  decode?: string;
  prefill?: string;
  requestId?: string;
  tokens: number;
  ttftMs?: number;
  tpotMs?: number;
  targets?: { ttftMs: number; tpotMs: number };
  met?: boolean;
  /** Why the request failed; a request succeeded when it is absent (its stream ended with [DONE] and carried no error event). */
  error?: string;
  /** Why the pool's targets could not be had (the request itself may still have succeeded). */
  targetsError?: string;
}

export interface ClientSummary {
  requests: number;
  succeeded: number;
  met: number;
  attainment: number;
}

/** Characters per prompt token, as the pod simulator counts them. */
const CHARS_PER_TOKEN = 4;

export async function runClient(o: ClientOptions, onResult: (r: ClientResult) => void): Promise<ClientSummary> {
  if (o.gatewayUrl === undefined && o.headroomUrl === undefined) throw new RangeError("give --gateway or --headroom");
  const targets = new Map<string, Targets>();
  if (o.gatewayUrl !== undefined && o.count > 0) await warmUp(o.gatewayUrl, o.timeoutMs);
  let next = 0;
  let succeeded = 0;
  let met = 0;
  const worker = async () => {
    for (let index = next++; index < o.count; index = next++) {
      const r = await oneRequest(o, index, targets);
      if (r.error === undefined) succeeded++;
      if (r.met) met++;
      onResult(r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.count)) }, worker));
  return { requests: o.count, succeeded, met, attainment: o.count > 0 ? met / o.count : 0 };
}

/**
 * One untimed request to the gateway's origin, its outcome ignored, so that the first timed request is
 * not charged for fetch's first-use setup (tens of ms) nor the connect: it reuses this connection. A GET
 * of / rather than anything under /v1/, for which a gateway would ask headroom for a pick (and not a HEAD:
 * fetch closes the connection after one).
 */
async function warmUp(gatewayUrl: string, timeoutMs: number): Promise<void> {
  try {
    const res = await fetch(new URL("/", gatewayUrl), { signal: AbortSignal.timeout(Math.min(timeoutMs, 5_000)) });
    await res.arrayBuffer();
    // fetch gives the connection back to its pool just after the body ends: a request sent at once would open another.
    await new Promise((resolve) => setImmediate(resolve));
  } catch {
    // The requests themselves will say what is wrong with the gateway.
  }
}

function sloHeaders(o: ClientOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (o.level !== undefined) h["x-slo-level"] = o.level;
  if (o.ttftMs !== undefined) h["x-slo-ttft-ms"] = String(o.ttftMs);
  if (o.tpotMs !== undefined) h["x-slo-tpot-ms"] = String(o.tpotMs);
  return h;
}

async function oneRequest(o: ClientOptions, index: number, known: Map<string, Targets>): Promise<ClientResult> {
  const result: ClientResult = { index, status: 0, tokens: 0 };
  const prompt = "lorem ipsum ".repeat(Math.ceil((o.promptTokens * CHARS_PER_TOKEN) / 12)).slice(0, o.promptTokens * CHARS_PER_TOKEN);
  // The usage chunk gives the real token count: one event may carry several tokens.
  const stream = { stream: true, stream_options: { include_usage: true } };
  const body = o.chat ? { messages: [{ role: "user", content: prompt }], max_tokens: o.maxTokens, ...stream } : { prompt, max_tokens: o.maxTokens, ...stream };
  const path = o.chat ? "/v1/chat/completions" : "/v1/completions";
  const headers: Record<string, string> = { "content-type": "application/json", ...sloHeaders(o) };
  let url: string;
  try {
    if (o.gatewayUrl !== undefined) {
      url = `${o.gatewayUrl}${path}`;
    } else {
      const pick = await fetch(`${o.headroomUrl}/v1/gateway/pick`, {
        headers: { ...sloHeaders(o), "x-prompt-tokens": String(o.promptTokens) },
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      if (pick.status !== 200) {
        result.status = pick.status;
        result.error = `pick refused: ${(await pick.text()).trim()}`;
        return result;
      }
      await pick.arrayBuffer();
      result.pool = nonEmpty(pick.headers.get("x-headroom-pool"));
      result.decode = nonEmpty(pick.headers.get("x-gateway-destination-endpoint"));
      result.prefill = nonEmpty(pick.headers.get("x-prefiller-host-port"));
      result.requestId = nonEmpty(pick.headers.get("x-headroom-request-id"));
      if (result.decode === undefined) {
        result.error = "the pick named no decode pod (x-gateway-destination-endpoint)";
        return result;
      }
      if (result.prefill !== undefined) headers["x-prefiller-host-port"] = result.prefill;
      if (result.requestId !== undefined) headers["x-request-id"] = result.requestId;
      url = `http://${result.decode}${path}`;
    }
    const started = performance.now();
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: AbortSignal.timeout(o.timeoutMs) });
    result.status = res.status;
    result.pool ??= nonEmpty(res.headers.get("x-headroom-pool"));
    result.decode ??= nonEmpty(res.headers.get("x-headroom-decode"));
    result.prefill ??= nonEmpty(res.headers.get("x-headroom-prefill"));
    result.requestId ??= nonEmpty(res.headers.get("x-headroom-request-id"));
    if (res.status !== 200 || res.body === null) {
      result.error = (await res.text()).trim();
      return result;
    }
    const read = await readStream(res.body, o.chat);
    // Times measured before a stream broke are kept with its error.
    const times = read.eventTimes;
    result.tokens = read.completionTokens ?? times.length;
    if (times.length > 0) result.ttftMs = times[0] - started;
    if (times.length > 1 && result.tokens > 1) result.tpotMs = (times[times.length - 1] - times[0]) / (result.tokens - 1);
    if (read.error !== undefined) {
      result.error = read.error;
      return result;
    }
  } catch (err) {
    result.error = (err as Error).message;
    return result;
  }
  try {
    result.targets = await targetsFor(o, result.pool, known);
  } catch (err) {
    result.targetsError = (err as Error).message;
  }
  if (result.targets !== undefined && result.ttftMs !== undefined) {
    result.met = result.ttftMs <= result.targets.ttftMs && (result.tpotMs === undefined || result.tpotMs <= result.targets.tpotMs);
  }
  return result;
}

interface StreamRead {
  /** Times (performance.now) of each event that carried text. */
  eventTimes: number[];
  /** The usage chunk's completion_tokens, when the server sent one. */
  completionTokens?: number;
  /** Why the stream did not end with [DONE], or the error event it carried. */
  error?: string;
}

/**
 * Reads an OpenAI event stream to its [DONE] or an error event; what was read before a failure is kept with
 * the error. Parsed as the SSE format says (https://html.spec.whatwg.org/multipage/server-sent-events.html):
 * lines end with CRLF, LF or CR, a blank line ends an event, an event's data is its `data:` lines (one space
 * after the colon dropped) joined with LF, and other fields and comments are ignored.
 */
async function readStream(body: ReadableStream<Uint8Array>, chat: boolean): Promise<StreamRead> {
  const read: StreamRead = { eventTimes: [] };
  const decoder = new TextDecoder();
  let buffer = "";
  let dataLines: string[] = [];
  /** The last chunk ended with a CR: an LF first in the next is that CRLF's, not a line of its own. */
  let crLast = false;
  /** Takes one event's data; true when the stream is done with (its [DONE] or an error event). */
  const dispatch = (payload: string): boolean => {
    if (payload === "[DONE]") return true;
    const data = JSON.parse(payload) as { choices?: { text?: string; delta?: { content?: string } }[]; usage?: { completion_tokens?: number }; error?: unknown };
    // How vLLM reports a failure once the stream has begun (a [DONE] may still follow).
    if (data.error !== undefined && data.error !== null) {
      read.error = `the stream reported an error: ${errorMessage(data.error)}`;
      return true;
    }
    const choice = data.choices?.[0];
    const text = chat ? choice?.delta?.content : choice?.text;
    if (text !== undefined && text !== "") read.eventTimes.push(performance.now());
    const tokens = data.usage?.completion_tokens;
    if (typeof tokens === "number" && Number.isInteger(tokens) && tokens >= 0) read.completionTokens = tokens;
    return false;
  };
  try {
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      if (crLast && buffer !== "") {
        if (buffer.startsWith("\n")) buffer = buffer.slice(1);
        crLast = false;
      }
      const lineEnd = /\r\n|\r|\n/g;
      let start = 0;
      for (let m = lineEnd.exec(buffer); m !== null; m = lineEnd.exec(buffer)) {
        const line = buffer.slice(start, m.index);
        start = m.index + m[0].length;
        crLast = m[0] === "\r" && start === buffer.length;
        if (line === "") {
          if (dataLines.length === 0) continue;
          const payload = dataLines.join("\n");
          dataLines = [];
          if (dispatch(payload)) return read;
          continue;
        }
        const colon = line.indexOf(":");
        if (colon === 0) continue; // a comment
        const field = colon < 0 ? line : line.slice(0, colon);
        if (field !== "data") continue;
        const value = colon < 0 ? "" : line.slice(colon + 1);
        dataLines.push(value.startsWith(" ") ? value.slice(1) : value);
      }
      buffer = buffer.slice(start);
    }
    read.error = "the stream ended before data: [DONE]";
  } catch (err) {
    read.error = (err as Error).message;
  }
  return read;
}

/** An error event's message: its `message` (OpenAI's and vLLM's error object), else the whole of it. */
function errorMessage(error: unknown): string {
  if (typeof error === "string") return error;
  const message = (error as { message?: unknown }).message;
  return typeof message === "string" && message !== "" ? message : JSON.stringify(error);
}

type Targets = { ttftMs: number; tpotMs: number };

/**
 * Explicit targets win; otherwise the pool's, from headroom's route or, without headroom, the default pools'.
 * Throws why when they cannot be had.
 */
async function targetsFor(o: ClientOptions, pool: string | undefined, known: Map<string, Targets>): Promise<Targets> {
  if (o.ttftMs !== undefined && o.tpotMs !== undefined) return { ttftMs: o.ttftMs, tpotMs: o.tpotMs };
  const poolTargets = await poolTargetsFor(o, pool, known);
  return { ttftMs: o.ttftMs ?? poolTargets.ttftMs, tpotMs: o.tpotMs ?? poolTargets.tpotMs };
}

async function poolTargetsFor(o: ClientOptions, pool: string | undefined, known: Map<string, Targets>): Promise<Targets> {
  if (pool === undefined) throw new Error("the response named no pool (x-headroom-pool) to take targets from: give both --ttft-ms and --tpot-ms");
  let poolTargets = known.get(pool);
  if (poolTargets !== undefined) return poolTargets;
  if (o.headroomUrl !== undefined) {
    const res = await fetch(`${o.headroomUrl}/v1/route`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(o.level === undefined ? {} : { sloLevel: o.level }),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok) throw new Error(`POST /v1/route: ${res.status} ${(await res.text()).trim()}`);
    const t = ((await res.json()) as { targets?: Partial<Targets> }).targets;
    if (typeof t?.ttftMs !== "number" || typeof t.tpotMs !== "number") throw new Error("POST /v1/route: no targets in its answer");
    poolTargets = { ttftMs: t.ttftMs, tpotMs: t.tpotMs };
  } else {
    poolTargets = DEFAULTS.pools.find((p) => p.name === pool)?.targets;
    if (poolTargets === undefined) throw new Error(`pool ${pool} is not one of the default pools: give --headroom for its targets, or both --ttft-ms and --tpot-ms`);
  }
  known.set(pool, poolTargets);
  return poolTargets;
}

function nonEmpty(v: string | null): string | undefined {
  return v === null || v === "" ? undefined : v;
}
