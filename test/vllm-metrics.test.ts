// Reading vLLM's /metrics text: today's and older metric names, several engines or models, lines it
// does not read (other families, HELP lines), every cause of rejection, and hostile input (random
// text, mutated scrapes, absurd numbers) that must give either valid metrics or a cause, never an
// exception.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import type { PodMetrics, ScrapedHistogram } from "../src/pods/types.js";
import { parseVllmMetrics, VLLM_PARSE_CAUSES, type VllmParseResult } from "../src/pods/vllm-metrics.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
/** vLLM v1 (0.10) serving Llama-3.1-8B: engine and model_name labels, _created series. */
const CURRENT = readFileSync(join(fixtures, "vllm-metrics.txt"), "utf8");
/** vLLM v0 (0.6): gpu_cache_usage_perc, no engine label, le before model_name. */
const V0 = readFileSync(join(fixtures, "vllm-metrics-v0.txt"), "utf8");

function ok(result: VllmParseResult): PodMetrics {
  if (!result.ok) throw new Error(`expected metrics, got ${result.cause}: ${result.message}`);
  return result.metrics;
}

function causeOf(text: string): string {
  const result = parseVllmMetrics(text, 0);
  return result.ok ? "ok" : result.cause;
}

/** One histogram series in the text format, from per-bucket (not cumulative) counts. */
function histogramText(name: string, labels: string, bounds: number[], perBucket: number[], sum: number): string {
  const lines: string[] = [`# HELP ${name} test histogram`, `# TYPE ${name} histogram`];
  let cumulative = 0;
  [...bounds, Infinity].forEach((bound, i) => {
    cumulative += perBucket[i]!;
    lines.push(`${name}_bucket{${labels},le="${bound === Infinity ? "+Inf" : bound}"} ${cumulative}`);
  });
  lines.push(`${name}_sum{${labels}} ${sum}`, `${name}_count{${labels}} ${cumulative}`);
  return lines.join("\n");
}

const GAUGES = [
  "vllm:num_requests_waiting 1",
  "vllm:num_requests_running 2",
  "vllm:kv_cache_usage_perc 0.5",
].join("\n");

/** Everything a successful parse promises (PodMetrics' doc comment), checked on any result. */
function expectValid(result: VllmParseResult, scrapedAtMs: number): void {
  if (!result.ok) {
    expect(VLLM_PARSE_CAUSES).toContain(result.cause);
    expect(typeof result.message).toBe("string");
    expect(result.message.length).toBeLessThanOrEqual(201);
    return;
  }
  const m = result.metrics;
  expect(m.scrapedAtMs).toBe(scrapedAtMs);
  for (const value of [m.waiting, m.running, m.kvUsage]) {
    expect(Number.isFinite(value) && value >= 0).toBe(true);
  }
  expect(m.kvUsage).toBeLessThanOrEqual(1);
  if (m.kvCapacityTokens !== undefined) expect(Number.isSafeInteger(m.kvCapacityTokens) && m.kvCapacityTokens >= 0).toBe(true);
  for (const h of [m.ttft, m.tpot]) if (h !== undefined) expectHistogram(h);
}

function expectHistogram(h: ScrapedHistogram): void {
  expect(h.le.length).toBeGreaterThan(0);
  expect(h.counts.length).toBe(h.le.length);
  expect(h.le[h.le.length - 1]).toBe(Infinity);
  for (let i = 1; i < h.le.length; i++) {
    expect(h.le[i]!).toBeGreaterThan(h.le[i - 1]!);
    expect(h.counts[i]!).toBeGreaterThanOrEqual(h.counts[i - 1]!);
  }
  expect(h.count).toBe(h.counts[h.counts.length - 1]);
  expect(Number.isFinite(h.sum) && h.sum >= 0).toBe(true);
}

describe("real vLLM exposition text", () => {
  test("vLLM v1: gauges, KV capacity from cache_config_info, both latency histograms", () => {
    const m = ok(parseVllmMetrics(CURRENT, 1234.5));
    expect(m.scrapedAtMs).toBe(1234.5);
    expect(m.waiting).toBe(3);
    expect(m.running).toBe(12);
    expect(m.kvUsage).toBe(0.4275);
    expect(m.kvCapacityTokens).toBe(16 * 27503);
    const ttft = m.ttft!;
    expect(ttft.le).toEqual([
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
      Infinity,
    ]);
    expect(ttft.counts.slice(0, 5)).toEqual([0, 0, 3, 44, 256]);
    expect(ttft.count).toBe(1842);
    expect(ttft.sum).toBeCloseTo(276.93812584877014, 12);
    expect(m.tpot!.count).toBe(459218);
    expect(m.tpot!.le).toHaveLength(20);
    expectValid({ ok: true, metrics: m }, 1234.5);
  });

  test("vLLM v0: gpu_cache_usage_perc, le written before model_name", () => {
    const m = ok(parseVllmMetrics(V0, 0));
    expect(m).toMatchObject({ waiting: 0, running: 2, kvUsage: 0.0031, kvCapacityTokens: 16 * 58254 });
    expect(m.ttft).toMatchObject({ count: 1, sum: 0.013926267623901367 });
    expect(m.ttft!.counts[3]).toBe(1);
    expect(m.tpot).toMatchObject({ count: 15 });
  });

  test("the newer name is read when both KV usage gauges are present", () => {
    const text = "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.2\n";
    expect(ok(parseVllmMetrics(text, 0)).kvUsage).toBe(0.2);
  });

  test("vLLM 0.13+: inter_token_latency_seconds stands in for the removed time_per_output_token_seconds", () => {
    const text = `${GAUGES}\n${histogramText("vllm:inter_token_latency_seconds", 'engine="0"', [0.01, 0.05], [5, 7, 1], 0.4)}`;
    expect(ok(parseVllmMetrics(text, 0)).tpot).toEqual({ le: [0.01, 0.05, Infinity], counts: [5, 12, 13], sum: 0.4, count: 13 });
  });

  test("TPOT is read from a per-token histogram when there is one (the per-request one holds a 0 for every one-token request), else per request", () => {
    const perToken = histogramText("vllm:time_per_output_token_seconds", 'engine="0"', [0.01, 0.05], [200, 40, 9], 3.1);
    const itl = histogramText("vllm:inter_token_latency_seconds", 'engine="0"', [0.01, 0.05], [200, 40, 9], 3.1);
    const perRequest = histogramText("vllm:request_time_per_output_token_seconds", 'engine="0"', [0.01, 0.05], [1, 2, 0], 0.06);
    const tokens = { le: [0.01, 0.05, Infinity], counts: [200, 240, 249], sum: 3.1, count: 249 };
    expect(ok(parseVllmMetrics(`${GAUGES}\n${perToken}\n${itl}\n${perRequest}`, 0)).tpot).toEqual(tokens);
    expect(ok(parseVllmMetrics(`${GAUGES}\n${perRequest}\n${itl}`, 0)).tpot).toEqual(tokens);
    expect(ok(parseVllmMetrics(`${GAUGES}\n${perRequest}`, 0)).tpot).toEqual({ le: [0.01, 0.05, Infinity], counts: [1, 3, 3], sum: 0.06, count: 3 });
  });

  test("several engines or models: counts summed, usage averaged, capacity and histograms added", () => {
    const text = [
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 5',
      'vllm:num_requests_running{engine="0",model_name="m"} 8',
      'vllm:num_requests_running{engine="1",model_name="m"} 1',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75',
      'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0',
      'vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="10"} 1.0',
      histogramText("vllm:time_to_first_token_seconds", 'engine="0",model_name="m"', [0.1, 1], [1, 2, 3], 10),
      histogramText("vllm:time_to_first_token_seconds", 'engine="1",model_name="m"', [0.1, 1], [4, 0, 1], 2.5),
    ].join("\n");
    const m = ok(parseVllmMetrics(text, 0));
    expect(m).toMatchObject({ waiting: 7, running: 9, kvUsage: 0.5, kvCapacityTokens: 16_000 + 320 });
    expect(m.ttft).toEqual({ le: [0.1, 1, Infinity], counts: [5, 7, 11], sum: 12.5, count: 11 });
    expect(m.tpot).toBeUndefined();
  });

  test("the last line counts even without a final newline", () => {
    expect(ok(parseVllmMetrics("vllm:num_requests_running 2\nvllm:kv_cache_usage_perc 0\nvllm:num_requests_waiting 4", 0)).waiting).toBe(4);
  });

  test("windows line endings, timestamps and exponents are read", () => {
    const text = "vllm:num_requests_waiting 1e1 1752901145000\r\nvllm:num_requests_running +2.5E0\r\nvllm:kv_cache_usage_perc .5\r\n";
    expect(ok(parseVllmMetrics(text, 0))).toMatchObject({ waiting: 10, running: 2.5, kvUsage: 0.5 });
  });

  test("capacity is left out, not rejected, when vLLM has not sized its cache yet", () => {
    const m = ok(parseVllmMetrics(`${GAUGES}\nvllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0`, 0));
    expect(m.kvCapacityTokens).toBeUndefined();
  });
});

describe("lines headroom does not read", () => {
  /** The other histograms vLLM v1 registers (vllm/v1/metrics/loggers.py), as prometheus_client writes them. */
  const others = [
    histogramText("vllm:request_queue_time_seconds", 'engine="0",model_name="m"', [0.3, 0.5, 1, 5], [1, 2, 3, 4, 5], 12.5),
    histogramText("vllm:request_prompt_tokens", 'engine="0",model_name="m"', [100, 1000, 10_000], [7, 8, 9, 1], 99_000),
    "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
    "# TYPE vllm:prompt_tokens_total counter",
    'vllm:prompt_tokens_total{engine="0",model_name="m"} 1.2e6',
    'vllm:prompt_tokens_created{engine="0",model_name="m"} 1.75e9',
    "# a comment of the exporter's own",
    histogramText("http_request_duration_highr_seconds", 'handler="/metrics"', [0.01, 0.1, 1], [40, 3, 0, 0], 0.9),
  ];

  test("a whole vLLM page reads the same as the families read here alone", () => {
    const lines = CURRENT.split("\n");
    // Interleaved: before, between and after the families read here.
    const mixed = [...others.slice(0, 3), ...lines.slice(0, 40), ...others.slice(3, 6), ...lines.slice(40), ...others.slice(6)].join("\n");
    expect(parseVllmMetrics(mixed, 5)).toEqual(parseVllmMetrics(CURRENT, 5));
  });

  test.each([
    ["on a metric not read here", "# HELP some_sidecar_metric"],
    ["with a trailing blank, as client libraries write it", "# HELP some_sidecar_metric "],
    ["on a metric read here", "# HELP vllm:num_requests_waiting"],
  ])("a HELP line without text %s does not fail the scrape", (_what, help) => {
    expect(ok(parseVllmMetrics(`${help}\n${GAUGES}\n`, 0))).toMatchObject({ waiting: 1, running: 2, kvUsage: 0.5 });
  });

  test("a malformed line of a family not read here does not fail the scrape", () => {
    const text = `${GAUGES}\nsome_sidecar_metric{path=/metrics} 1\n# TYPE other_metric gauge counter\n`;
    expect(ok(parseVllmMetrics(text, 0))).toMatchObject({ waiting: 1, running: 2, kvUsage: 0.5 });
  });

  test("a series repeated with other families between is still a duplicate", () => {
    // Once the others are dropped, the two lines are next to each other.
    const text = `${GAUGES}\n${others.join("\n")}\nvllm:kv_cache_usage_perc 0.5\n`;
    expect(causeOf(text)).toBe("parse_error");
  });
});

describe("causes", () => {
  const waiting = (value: string) => `vllm:num_requests_waiting ${value}\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n`;
  const ttft = (lines: string[]) => `${GAUGES}\n# TYPE vllm:time_to_first_token_seconds histogram\n${lines.join("\n")}\n`;

  test.each([
    ["an empty body", "", "missing_metric"],
    ["an HTML error page", "<html><body>502 Bad Gateway</body></html>", "missing_metric"],
    ["no waiting gauge", "vllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0", "missing_metric"],
    ["no running gauge", "vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0", "missing_metric"],
    ["no KV usage gauge", "vllm:num_requests_waiting 0\nvllm:num_requests_running 0", "missing_metric"],
    ["a HELP line alone", "# HELP vllm:num_requests_waiting waiting\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0", "missing_metric"],
    ["NaN", waiting("NaN"), "invalid_value"],
    ["+Inf", waiting("+Inf"), "invalid_value"],
    ["a negative count", waiting("-1"), "invalid_value"],
    ["an overflowing number", waiting("1e999"), "invalid_value"],
    ["usage above 1", "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 1.2", "invalid_value"],
    ["a value that is no number", waiting("many"), "parse_error"],
    ["a hexadecimal value", waiting("0x10"), "parse_error"],
    ["an unquoted label value", 'vllm:num_requests_waiting{model_name=m} 1', "parse_error"],
    ["a TYPE line with two types", "# TYPE vllm:num_requests_waiting gauge counter", "parse_error"],
    ["the same series twice", `${waiting("1")}vllm:num_requests_waiting 2\n`, "parse_error"],
    ["buckets that decrease", ttft(['vllm:time_to_first_token_seconds_bucket{le="0.1"} 5', 'vllm:time_to_first_token_seconds_bucket{le="+Inf"} 4', "vllm:time_to_first_token_seconds_sum 1", "vllm:time_to_first_token_seconds_count 4"]), "invalid_histogram"],
    ["no +Inf bucket", ttft(['vllm:time_to_first_token_seconds_bucket{le="0.1"} 5', "vllm:time_to_first_token_seconds_sum 1", "vllm:time_to_first_token_seconds_count 5"]), "invalid_histogram"],
    ["a count that is not the +Inf bucket", ttft(['vllm:time_to_first_token_seconds_bucket{le="+Inf"} 5', "vllm:time_to_first_token_seconds_sum 1", "vllm:time_to_first_token_seconds_count 6"]), "invalid_histogram"],
    ["no _sum", ttft(['vllm:time_to_first_token_seconds_bucket{le="+Inf"} 5', "vllm:time_to_first_token_seconds_count 5"]), "invalid_histogram"],
    ["a _sum alone", ttft(["vllm:time_to_first_token_seconds_sum 1"]), "invalid_histogram"],
    ["a bucket without le", ttft(["vllm:time_to_first_token_seconds_bucket 5"]), "invalid_histogram"],
    ["a NaN bound", ttft(['vllm:time_to_first_token_seconds_bucket{le="NaN"} 5']), "invalid_histogram"],
    ["a negative bucket count", ttft(['vllm:time_to_first_token_seconds_bucket{le="+Inf"} -5', "vllm:time_to_first_token_seconds_sum 1", "vllm:time_to_first_token_seconds_count -5"]), "invalid_value"],
    [
      "series with other bounds",
      `${GAUGES}\n${histogramText("vllm:time_to_first_token_seconds", 'm="a"', [0.1], [1, 1], 1)}\n${histogramText("vllm:time_to_first_token_seconds", 'm="b"', [0.2], [1, 1], 1)}`,
      "invalid_histogram",
    ],
  ])("%s → %s", (_what, text, cause) => {
    const result = parseVllmMetrics(text, 0);
    expect(result.ok ? "ok" : result.cause).toBe(cause);
    if (!result.ok) expect(result.message).not.toBe("");
  });

  test("messages stay short whatever the input", () => {
    const result = parseVllmMetrics(`vllm:num_requests_waiting{model_name="${"x".repeat(100_000)}" 1`, 0);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message.length).toBeLessThanOrEqual(201);
  });
});

describe("hostile input never throws", () => {
  const lines = CURRENT.split("\n");
  /** Numbers as a broken exporter might write them. */
  const numberText = fc.oneof(
    fc.double().map(String),
    fc.constantFrom("NaN", "+Inf", "-Inf", "-0", "1e309", "-1", "0x1p3", "", " ", "1_000", "٣"),
    fc.integer().map(String),
  );
  type Edit =
    | { kind: "delete"; at: number }
    | { kind: "duplicate"; at: number }
    | { kind: "swap"; at: number; with: number }
    | { kind: "value"; at: number; text: string }
    | { kind: "insert"; at: number; text: string }
    | { kind: "chars"; at: number; pos: number; text: string };
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("duplicate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), with: fc.nat() }),
    fc.record({ kind: fc.constant("value" as const), at: fc.nat(), text: numberText }),
    fc.record({ kind: fc.constant("chars" as const), at: fc.nat(), pos: fc.nat(), text: fc.string({ maxLength: 4, unit: "binary" }) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), text: fc.string({ maxLength: 40, unit: "binary" }) }),
  );

  function mutate(edits: Edit[]): string {
    const out = [...lines];
    for (const e of edits) {
      const i = e.at % out.length;
      if (e.kind === "delete") out.splice(i, 1);
      else if (e.kind === "duplicate") out.splice(i, 0, out[i]!);
      else if (e.kind === "swap") [out[i], out[e.with % out.length]] = [out[e.with % out.length]!, out[i]!];
      else if (e.kind === "value") out[i] = out[i]!.replace(/ [^ ]*$/, ` ${e.text}`);
      else if (e.kind === "chars") out[i] = out[i]!.slice(0, e.pos % (out[i]!.length + 1)) + e.text + out[i]!.slice(e.pos % (out[i]!.length + 1) + 1);
      else out.splice(i, 0, e.text);
      if (out.length === 0) out.push("");
    }
    return out.join("\n");
  }

  test("random text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400, unit: "binary" }), fc.double({ noNaN: true }), (text, atMs) => {
        expectValid(parseVllmMetrics(text, atMs), atMs);
      }),
      { numRuns: 500 },
    );
  });

  test("random lines built from the format's own pieces", () => {
    const piece = fc.constantFrom(
      "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
      "vllm:time_to_first_token_seconds_bucket", "vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count",
      "vllm:cache_config_info", "# TYPE ", "# HELP ", " histogram", " gauge", "{", "}", '="', '"', ",", "le", "+Inf", " ", "\n",
      "\\", "0.5", "1", "-1", "NaN", "block_size", "num_gpu_blocks", "=",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (pieces) => {
        expectValid(parseVllmMetrics(pieces.join(""), 7), 7);
      }),
      { numRuns: 1000 },
    );
  });

  test("mutations of a real scrape", () => {
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 6 }), (edits) => {
        expectValid(parseVllmMetrics(mutate(edits), 0), 0);
      }),
      { numRuns: 400 },
    );
  });

  test("any number written for waiting is either read exactly or rejected as invalid", () => {
    const at = lines.findIndex((line) => line.startsWith("vllm:num_requests_waiting{"));
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.constantFrom(1e300, -0, Number.MAX_VALUE)), (value) => {
        const text = mutate([{ kind: "value", at, text: String(value) }]);
        const result = parseVllmMetrics(text, 0);
        if (Number.isFinite(value) && value >= 0) expect(ok(result).waiting === value).toBe(true);
        else expect(result.ok ? "ok" : result.cause).toBe("invalid_value");
      }),
      { numRuns: 300 },
    );
  });

  test("series that overflow only when added up are rejected", () => {
    const huge = (labels: string) => histogramText("vllm:time_to_first_token_seconds", labels, [1], [1e308, 0], 1);
    expect(causeOf(`${GAUGES}\n${huge('m="a"')}`)).toBe("ok");
    expect(causeOf(`${GAUGES}\n${huge('m="a"')}\n${huge('m="b"')}`)).toBe("invalid_value");
    expect(causeOf("vllm:num_requests_waiting{m=\"a\"} 1e308\nvllm:num_requests_waiting{m=\"b\"} 1e308\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0")).toBe("invalid_value");
  });
});
