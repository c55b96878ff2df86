// The webhook actuator: POSTs each decision as JSON to a URL; any answer but 2xx (or no answer within
// the timeout) fails the attempt, which the applier retries with backoff.

import type { Actuator } from "./actuators.js";
import type { ScaleRequest } from "./types.js";

export const WEBHOOK_DEFAULTS = Object.freeze({
  timeoutMs: 5000,
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

  constructor(private readonly options: WebhookActuatorOptions) {
    if (!URL.canParse(options.url) || !/^https?:$/.test(new URL(options.url).protocol)) {
      throw new TypeError(`webhook url must be an http(s) URL, got ${JSON.stringify(options.url)}`);
    }
    this.url = options.url;
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
        signal: AbortSignal.timeout(this.options.timeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs),
      });
    } catch (err) {
      const cause = (err as Error).name === "TimeoutError" ? "timed out" : (err as Error).message;
      throw new Error(`webhook ${this.url}: ${cause}`);
    }
    // Drain the body so the connection can be reused.
    const text = await response.text().catch(() => "");
    if (!response.ok) throw new Error(`webhook ${this.url}: HTTP ${response.status} ${text.slice(0, 200)}`.trim());
  }
}
