// The webhook actuator: POSTs each decision as JSON to a URL; any answer but 2xx (or no answer within
// the timeout) fails the attempt, which the applier retries with backoff. Redirects are not followed:
// fetch would re-send a POST redirected by 301/302/303 as a GET without the decision, and count the
// redirect target's 2xx as applied.

import type { Actuator } from "./actuators.js";
import type { ScaleRequest } from "./types.js";

export const WEBHOOK_DEFAULTS = Object.freeze({
  timeoutMs: 5000,
  /** Bytes of an answer's body read at most: a failure quotes its start; the rest is not downloaded. */
  maxBodyBytes: 4096,
  /** Characters of the body a failure quotes. */
  quotedChars: 200,
});

export interface WebhookActuatorOptions {
  url: string;
  timeoutMs?: number;
  /** Extra request headers, e.g. an authorization token. */
  headers?: Record<string, string>;
}

/** The body posted: the decision, with the layout as `workers`. */
export interface WebhookBody {
  pool: string;
  workers: { prefill: number; decode: number; both: number };
  tp: number;
  gpus: number;
  reason: string;
  details: string[];
  decidedAtMs: number;
}

export class WebhookActuator implements Actuator {
  readonly kind = "webhook";
  private readonly url: string;
  /** How errors name the hook (see shownUrl). */
  private readonly shown: string;

  constructor(private readonly options: WebhookActuatorOptions) {
    if (!URL.canParse(options.url) || !/^https?:$/.test(new URL(options.url).protocol)) {
      throw new TypeError(`webhook url must be an http(s) URL, got ${JSON.stringify(options.url)}`);
    }
    this.url = options.url;
    this.shown = shownUrl(options.url);
  }

  async apply(request: ScaleRequest): Promise<void> {
    const body: WebhookBody = {
      pool: request.pool,
      workers: { prefill: request.prefill, decode: request.decode, both: request.both },
      tp: request.tp,
      gpus: request.gpus,
      reason: request.reason,
      details: request.details,
      decidedAtMs: request.atMs,
    };
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...this.options.headers },
        body: JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(this.options.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs),
      });
    } catch (err) {
      const cause = (err as Error).name === "TimeoutError" ? "timed out" : this.redact(describeError(err));
      throw new Error(`webhook ${this.shown}: ${cause}`);
    }
    const text = await bodyStart(response, WEBHOOK_DEFAULTS.maxBodyBytes);
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get("location");
      throw new Error(`webhook ${this.shown}: HTTP ${response.status} redirects to ${location === null ? "nowhere" : JSON.stringify(location)}, not followed: the decision was not delivered`);
    }
    if (!response.ok) throw new Error(`webhook ${this.shown}: HTTP ${response.status} ${text.slice(0, WEBHOOK_DEFAULTS.quotedChars)}`.trim());
  }

  /** A message with the URL (as given or as parsed, e.g. in fetch's refusal of credentials) shown as the origin. */
  private redact(message: string): string {
    let out = message;
    for (const full of new Set([this.url, new URL(this.url).href])) out = out.split(full).join(this.shown);
    return out;
  }
}

/**
 * The hook as errors name it: its origin (scheme, host and port) alone. Errors are logged and served
 * by GET /v1/planner (apply.lastError) without authentication, and a webhook URL often carries its
 * secret: in the query (?token=), in userinfo, or as path segments (Slack's /services/T…/B…/<secret>,
 * Discord's /api/webhooks/<id>/<token>, or a token as the first segment). No segment of the path is safe
 * to show, so none is; the origin says which receiver failed, and the configuration has the rest.
 */
export function shownUrl(url: string): string {
  return new URL(url).origin;
}

/**
 * An error's message with its causes: fetch fails with just "fetch failed", the reason (connection
 * refused, DNS, TLS) being in `cause`, with a `code` such as ECONNREFUSED or ENOTFOUND.
 */
function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    parts.push(oneError(e));
    e = (e as { cause?: unknown }).cause;
  }
  return parts.filter((p) => p !== "").join(": ") || String(err);
}

function oneError(e: unknown): string {
  if (typeof e !== "object") return String(e);
  const { message, code, errors } = e as { message?: unknown; code?: unknown; errors?: unknown };
  let text = typeof message === "string" ? message : "";
  // An AggregateError (a connection tried at each address) may have no message of its own.
  if (text === "" && Array.isArray(errors)) text = [...new Set(errors.map((x) => oneError(x)))].join("; ");
  if (typeof code === "string" && code !== "" && !text.includes(code)) text = text === "" ? code : `${code}: ${text}`;
  return text;
}

/**
 * The first `maxBytes` of a response's body as text; the rest is not read (the stream is cancelled, so
 * a receiver that sends a large or endless body costs neither memory nor the whole timeout).
 */
async function bodyStart(response: Response, maxBytes: number): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
  } catch {
    // A body that breaks off (or times out) mid-way: what arrived is enough to quote.
  } finally {
    void reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, maxBytes));
}
