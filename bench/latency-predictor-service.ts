// A loopback stand-in for the public llm-d latency-predictor service (prediction and training server in
// one), for tests and bench:predictors: it validates rows as the real service's pydantic models do,
// predicts with a known formula of the features, and can be switched to misbehave in the ways the real
// one does (slow, 500, 503 "Models not ready", 422) or worse (malformed JSON, wrong count, any body).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How prediction calls are answered. */
export type PredictMode =
  /** 200 with one prediction per row from the formula. */
  | "ok"
  /** 500 {"detail":"Bulk prediction failed"}, as the real service on an internal error. */
  | "error"
  /** 503 {"detail":"Models not ready"}: the service has not trained yet. */
  | "not-ready"
  /** 422 as if a row had failed validation (a service stricter than the client expects). */
  | "reject"
  /** 200 with a body cut off in the middle. */
  | "malformed"
  /** 200 with one prediction fewer than rows. */
  | "wrong-count";

export interface StandInBehaviour {
  predict: PredictMode;
  /** Milliseconds before a prediction call is answered. */
  predictDelayMs: number;
  /** Replaces the answer to every prediction call (hostile-body tests); `rows` is the row count. */
  respond?: (rows: number) => { status: number; body: string };
  /** Status of training uploads: 202 accepts and records them; anything else fails them. */
  trainingStatus: number;
  trainingDelayMs: number;
  /**
   * Answers a valid training upload in place of `trainingStatus` when it returns an answer (a server
   * refusing some batches, e.g. 422 for one entry it will not take); a 2xx records the entries.
   */
  trainingRespond?: (entries: readonly unknown[]) => { status: number; body: string } | undefined;
}

export const DEFAULT_BEHAVIOUR: Readonly<StandInBehaviour> = Object.freeze({
  predict: "ok",
  predictDelayMs: 0,
  trainingStatus: 202,
  trainingDelayMs: 0,
});

export interface CallRecord {
  path: string;
  /** Rows (prediction) or entries (training) in the request; 0 when it did not parse. */
  rows: number;
  status: number;
  /** The request's rows, when the service was started with keepRows. */
  body?: unknown[];
}

export interface StandInOptions {
  /** Port on 127.0.0.1; default 0 (any free port). */
  port?: number;
  /** Requests above this size are answered 413 and their connection closed. */
  maxBodyBytes?: number;
  /** Calls remembered in `calls` (the oldest are forgotten). */
  maxRecordedCalls?: number;
  /** Training entries remembered in `trainingEntries` (the oldest are forgotten). */
  maxRecordedEntries?: number;
  /** Keep each call's rows in its record (tests); off for benchmarks. */
  keepRows?: boolean;
}

/** The row fields the formulas read; a validated row has them all. */
export interface StandInRow {
  kv_cache_percentage: number;
  input_token_length: number;
  num_request_waiting: number;
  num_request_running: number;
  num_tokens_generated: number;
  prefix_cache_score: number;
  pod_type?: string | null;
  prefill_tokens_in_flight?: number;
  decode_tokens_in_flight?: number;
}

/** The stand-in's TTFT: a fixed cost, the uncached prompt, the queue and the load. */
export function standInTtftMs(r: StandInRow): number {
  return (
    10 +
    0.1 * r.input_token_length * (1 - r.prefix_cache_score) +
    20 * r.num_request_waiting +
    5 * r.num_request_running +
    50 * r.kv_cache_percentage +
    0.01 * (r.prefill_tokens_in_flight ?? 0)
  );
}

/** The stand-in's TPOT: a fixed cost, the context and the batch. */
export function standInTpotMs(r: StandInRow): number {
  return (
    5 +
    0.002 * r.input_token_length +
    0.5 * r.num_request_running +
    10 * r.kv_cache_percentage +
    0.001 * (r.decode_tokens_in_flight ?? 0)
  );
}

const MAX_ROWS = 10_000;

interface FieldRule {
  kind: "int" | "fraction";
  required: boolean;
}

/** The real service's PredictionRequest: required counts and fractions, optional in-flight counts. */
const ROW_RULES: Record<string, FieldRule> = {
  kv_cache_percentage: { kind: "fraction", required: true },
  input_token_length: { kind: "int", required: true },
  num_request_waiting: { kind: "int", required: true },
  num_request_running: { kind: "int", required: true },
  num_tokens_generated: { kind: "int", required: true },
  prefix_cache_score: { kind: "fraction", required: true },
  prefill_tokens_in_flight: { kind: "int", required: false },
  decode_tokens_in_flight: { kind: "int", required: false },
};

interface ValidationError {
  type: string;
  loc: (string | number)[];
  msg: string;
}

/** FastAPI-shaped validation errors for one row (a TrainingEntry also needs actual_ttft_ms and actual_tpot_ms >= 0). */
function rowErrors(row: unknown, loc: (string | number)[], training: boolean): ValidationError[] {
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    return [{ type: "model_type", loc, msg: "Input should be a valid dictionary" }];
  }
  const r = row as Record<string, unknown>;
  const errors: ValidationError[] = [];
  const rules: [string, FieldRule | "ms"][] = Object.entries(ROW_RULES);
  if (training) rules.push(["actual_ttft_ms", "ms"], ["actual_tpot_ms", "ms"]);
  for (const [field, rule] of rules) {
    const v = r[field];
    const at = [...loc, field];
    if (v === undefined) {
      if (rule === "ms" || rule.required) errors.push({ type: "missing", loc: at, msg: "Field required" });
      continue;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      errors.push({ type: "type_error", loc: at, msg: "Input should be a valid number" });
    } else if (rule !== "ms" && rule.kind === "int" && !Number.isInteger(v)) {
      errors.push({ type: "int_from_float", loc: at, msg: "Input should be a valid integer, got a number with a fractional part" });
    } else if (v < 0) {
      errors.push({ type: "greater_than_equal", loc: at, msg: "Input should be greater than or equal to 0" });
    } else if (rule !== "ms" && rule.kind === "fraction" && v > 1) {
      errors.push({ type: "less_than_equal", loc: at, msg: "Input should be less than or equal to 1" });
    }
  }
  if (r.pod_type !== undefined && r.pod_type !== null && typeof r.pod_type !== "string") {
    errors.push({ type: "string_type", loc: [...loc, "pod_type"], msg: "Input should be a valid string" });
  }
  return errors;
}

export class LatencyPredictorStandIn {
  behaviour: StandInBehaviour = { ...DEFAULT_BEHAVIOUR };
  /** The most recent calls, oldest first. */
  readonly calls: CallRecord[] = [];
  /** The most recent accepted training entries, oldest first. */
  readonly trainingEntries: unknown[] = [];
  /** Totals since start (not bounded by the records above). */
  predictCalls = 0;
  predictRows = 0;
  trainingCalls = 0;
  trainingEntriesAccepted = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly maxBodyBytes: number;
  private readonly maxRecordedCalls: number;
  private readonly maxRecordedEntries: number;
  private readonly keepRows: boolean;
  private port = 0;
  private closed = false;

  private constructor(
    private readonly server: Server,
    options: StandInOptions,
  ) {
    this.maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
    this.maxRecordedCalls = options.maxRecordedCalls ?? 1000;
    this.maxRecordedEntries = options.maxRecordedEntries ?? 100_000;
    this.keepRows = options.keepRows ?? false;
  }

  /** Listens on 127.0.0.1 (at a free port unless options.port says which). */
  static async start(options: StandInOptions = {}): Promise<LatencyPredictorStandIn> {
    let service: LatencyPredictorStandIn | null = null;
    const server = createServer((req, res) => service!.handle(req, res));
    service = new LatencyPredictorStandIn(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    service.port = (server.address() as AddressInfo).port;
    return service;
  }

  /** Base URL, e.g. http://127.0.0.1:40123 (still known after close, so a test can restart on its port). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Back to answering every call correctly at once. */
  reset(): void {
    this.behaviour = { ...DEFAULT_BEHAVIOUR };
  }

  /** Forgets the records and totals. */
  clearRecords(): void {
    this.calls.length = 0;
    this.trainingEntries.length = 0;
    this.predictCalls = this.predictRows = this.trainingCalls = this.trainingEntriesAccepted = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "POST" || (path !== "/predict/bulk/strict" && path !== "/add_training_data_bulk")) {
      req.resume();
      this.send(res, 404, { detail: "Not Found" });
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      bytes += chunk.length;
      if (bytes > this.maxBodyBytes) {
        tooLarge = true;
        this.record({ path, rows: 0, status: 413 });
        res.writeHead(413, { "content-type": "application/json", connection: "close" });
        res.end(JSON.stringify({ detail: "Request body too large" }), () => req.destroy());
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        this.record({ path, rows: 0, status: 422 });
        this.send(res, 422, { detail: [{ type: "json_invalid", loc: ["body"], msg: "JSON decode error" }] });
        return;
      }
      if (path === "/predict/bulk/strict") this.predict(body, res);
      else this.train(body, res);
    });
  }

  private predict(body: unknown, res: ServerResponse): void {
    const rows = (body as { requests?: unknown } | null)?.requests;
    const problems = listErrors(rows, "requests", false);
    const n = Array.isArray(rows) ? rows.length : 0;
    this.predictCalls++;
    this.predictRows += n;
    const b = this.behaviour;
    const answer = (): void => {
      if (problems.length > 0) return this.reply(res, "/predict/bulk/strict", n, rows, 422, JSON.stringify({ detail: problems }));
      if (b.respond !== undefined) {
        const custom = b.respond(n);
        return this.reply(res, "/predict/bulk/strict", n, rows, custom.status, custom.body);
      }
      const valid = rows as StandInRow[];
      switch (b.predict) {
        case "error":
          return this.reply(res, "/predict/bulk/strict", n, rows, 500, JSON.stringify({ detail: "Bulk prediction failed" }));
        case "not-ready":
          return this.reply(res, "/predict/bulk/strict", n, rows, 503, JSON.stringify({ detail: "Models not ready" }));
        case "reject":
          return this.reply(
            res,
            "/predict/bulk/strict",
            n,
            rows,
            422,
            JSON.stringify({ detail: [{ type: "missing", loc: ["body", "requests", 0, "encoder_input_size"], msg: "Field required" }] }),
          );
        case "malformed": {
          const full = JSON.stringify(predictionBody(valid));
          return this.reply(res, "/predict/bulk/strict", n, rows, 200, full.slice(0, Math.floor(full.length / 2)));
        }
        case "wrong-count":
          return this.reply(res, "/predict/bulk/strict", n, rows, 200, JSON.stringify(predictionBody(valid.slice(1))));
        default:
          return this.reply(res, "/predict/bulk/strict", n, rows, 200, JSON.stringify(predictionBody(valid)));
      }
    };
    this.later(b.predictDelayMs, answer);
  }

  private train(body: unknown, res: ServerResponse): void {
    const entries = (body as { entries?: unknown } | null)?.entries;
    const problems = listErrors(entries, "entries", true);
    const n = Array.isArray(entries) ? entries.length : 0;
    this.trainingCalls++;
    const b = this.behaviour;
    this.later(b.trainingDelayMs, () => {
      if (problems.length > 0) return this.reply(res, "/add_training_data_bulk", n, entries, 422, JSON.stringify({ detail: problems }));
      const custom = b.trainingRespond?.(entries as unknown[]);
      if (custom !== undefined && (custom.status < 200 || custom.status > 299)) {
        return this.reply(res, "/add_training_data_bulk", n, entries, custom.status, custom.body);
      }
      if (custom === undefined && b.trainingStatus !== 202) {
        return this.reply(res, "/add_training_data_bulk", n, entries, b.trainingStatus, JSON.stringify({ detail: "Failed to add training data in bulk" }));
      }
      this.trainingEntriesAccepted += n;
      for (const entry of entries as unknown[]) this.trainingEntries.push(entry);
      const excess = this.trainingEntries.length - this.maxRecordedEntries;
      if (excess > 0) this.trainingEntries.splice(0, excess);
      if (custom !== undefined) return this.reply(res, "/add_training_data_bulk", n, entries, custom.status, custom.body);
      this.reply(res, "/add_training_data_bulk", n, entries, 202, JSON.stringify({ message: `Accepted ${n} training samples.` }));
    });
  }

  private later(delayMs: number, fn: () => void): void {
    if (delayMs <= 0) return fn();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    this.timers.add(timer);
  }

  private reply(res: ServerResponse, path: string, rows: number, body: unknown, status: number, text: string): void {
    this.record({ path, rows, status, ...(this.keepRows && Array.isArray(body) ? { body } : {}) });
    if (res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(text);
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private record(call: CallRecord): void {
    this.calls.push(call);
    if (this.calls.length > this.maxRecordedCalls) this.calls.shift();
  }
}

/** Validation errors of a `requests`/`entries` list, as FastAPI reports them (at most 20). */
function listErrors(list: unknown, key: string, training: boolean): ValidationError[] {
  if (!Array.isArray(list)) return [{ type: "missing", loc: ["body", key], msg: "Field required" }];
  if (!training && (list.length < 1 || list.length > MAX_ROWS)) {
    return [{ type: list.length < 1 ? "too_short" : "too_long", loc: ["body", key], msg: `List should have 1 to ${MAX_ROWS} items` }];
  }
  const errors: ValidationError[] = [];
  for (let i = 0; i < list.length && errors.length < 20; i++) errors.push(...rowErrors(list[i], ["body", key, i], training));
  return errors;
}

function predictionBody(rows: readonly StandInRow[]): unknown {
  const now = new Date().toISOString();
  return {
    predictions: rows.map((r) => ({
      ttft_ms: standInTtftMs(r),
      tpot_ms: standInTpotMs(r),
      predicted_at: now,
      model_type: "stand-in",
      objective_type: "quantile",
      quantile: 0.9,
      last_model_load: now,
    })),
    total_requests: rows.length,
    successful_predictions: rows.length,
    failed_predictions: 0,
    processing_time_ms: 0,
  };
}
