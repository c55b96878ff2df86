// Reads one scrape of a vLLM pod's Prometheus endpoint into PodMetrics (SPEC.md §5), checking every
// number it keeps. Any text, however broken, gives either metrics or a stable cause; it never throws.

import parsePrometheusTextFormat, { type PrometheusFamily } from "parse-prometheus-text-format";
import type { PodMetrics, ScrapedHistogram } from "./types.js";

export type VllmParseCause = "parse_error" | "missing_metric" | "invalid_value" | "invalid_histogram";
export const VLLM_PARSE_CAUSES: readonly VllmParseCause[] = [
  "parse_error",
  "missing_metric",
  "invalid_value",
  "invalid_histogram",
];

export type VllmParseResult =
  | { ok: true; metrics: PodMetrics }
  | { ok: false; cause: VllmParseCause; message: string };

const WAITING = "vllm:num_requests_waiting";
const RUNNING = "vllm:num_requests_running";
/** The first name present is read: vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc. */
const KV_USAGE = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"];
const CACHE_CONFIG = "vllm:cache_config_info";
const TTFT = ["vllm:time_to_first_token_seconds"];
/**
 * TPOT: the online predictor learns the mean of a histogram's delta between scrapes. The per-token
 * histogram (time_per_output_token_seconds, renamed inter_token_latency_seconds in vLLM 0.11 and
 * later dropped; one observation per token after the first) has the pod's step times alone, so it
 * comes first. The per-request one (request_time_per_output_token_seconds, vLLM 0.11 on) records 0 for
 * every one-token request (each prefill a pod serves for another pod among them), which dragged the
 * mean of a pod decoding exactly at its profile to half; it is the fallback.
 */
const TPOT = ["vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds", "vllm:request_time_per_output_token_seconds"];

const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];
const WANTED = new Set([
  WAITING,
  RUNNING,
  ...KV_USAGE,
  CACHE_CONFIG,
  ...[...TTFT, ...TPOT].flatMap((base) => HISTOGRAM_SUFFIXES.map((suffix) => base + suffix)),
]);

/** Messages are cut to this length: the line they complain about can be megabytes. */
const MAX_MESSAGE_CHARS = 200;

interface Series {
  labels: Record<string, string>;
  value: string | undefined;
}

/** Thrown inside the parse and turned into its result; nothing outside this file sees it. */
class Invalid extends Error {
  constructor(
    readonly reason: VllmParseCause,
    message: string,
  ) {
    super(message);
  }
}

export function parseVllmMetrics(text: string, scrapedAtMs: number): VllmParseResult {
  try {
    let families: PrometheusFamily[];
    try {
      families = parsePrometheusTextFormat(prepare(text));
    } catch (error) {
      return failure("parse_error", `not Prometheus text: ${errorMessage(error)}`);
    }
    const series = collect(families);
    const metrics: PodMetrics = {
      scrapedAtMs,
      waiting: total(WAITING, gauge(series, WAITING)),
      running: total(RUNNING, gauge(series, RUNNING)),
      kvUsage: kvUsage(series),
    };
    const kvCapacityTokens = capacityTokens(series.get(CACHE_CONFIG));
    if (kvCapacityTokens !== undefined) metrics.kvCapacityTokens = kvCapacityTokens;
    const ttft = histogram(series, TTFT);
    if (ttft !== undefined) metrics.ttft = ttft;
    const tpot = histogram(series, TPOT);
    if (tpot !== undefined) metrics.tpot = tpot;
    return { ok: true, metrics };
  } catch (error) {
    if (error instanceof Invalid) return failure(error.reason, error.message);
    return failure("parse_error", errorMessage(error));
  }
}

/**
 * The lines the parser needs, and only those. parse-prometheus-text-format folds every series of a
 * histogram family into one object and drops labelled _sum and _count samples (its issue #13, open
 * since 2020), and it loses the last line of a text without a final newline. So histogram families
 * reach it untyped, each _bucket, _sum and _count series keeping its labels to be reassembled here,
 * and the text always ends with a newline. It also rejects a HELP line without text, which the format
 * allows (prometheus_client writes one for a metric with no description), failing the whole scrape.
 *
 * So only the samples and TYPE lines of the names read here go through, no HELP line or comment: a
 * real page is mostly histograms headroom never reads, and the parser then takes about a third of
 * the time, with the same result. A line of another name that stood between two lines of one name
 * still separates them (BOUNDARY), as it did for the parser, so a series repeated there is still
 * caught as a duplicate (collect()). The name of a line is read as the parser reads it. A malformed
 * line of a name not read here does not fail the scrape, nor does a line without a name (the parser
 * would take it for one more series of the family before it).
 */
function prepare(text: string): string {
  const kept: string[] = [];
  let keptName: string | undefined;
  let separated = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    let name: string;
    let keep: boolean;
    if (line.startsWith("# ")) {
      const type = line.startsWith("# TYPE ");
      // Any other comment is no line of a family for the parser either.
      if (!type && !line.startsWith("# HELP ")) continue;
      const rest = line.slice("# TYPE ".length);
      const space = rest.indexOf(" ");
      name = space === -1 ? rest : rest.slice(0, space);
      // Histograms reach the parser untyped; the line went as a blank one did, separating nothing.
      if (type && space !== -1 && rest.slice(space + 1).toUpperCase() === "HISTOGRAM") continue;
      keep = type && WANTED.has(name);
    } else {
      name = sampleName(line);
      keep = WANTED.has(name);
    }
    if (!keep) {
      // The parser does not end a family at a line without a name.
      if (name !== "" && name !== keptName) separated = true;
      continue;
    }
    if (separated && name === keptName) kept.push(BOUNDARY);
    separated = false;
    keptName = name;
    kept.push(line);
  }
  return `${kept.join("\n")}\n`;
}

/** A line that ends the family before it and starts an empty one, of a name never read. */
const BOUNDARY = "# TYPE headroom:boundary untyped";

/** A sample line's metric name: up to its labels or the first blank, as the parser reads it. */
function sampleName(line: string): string {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    // "{", " ", "\t"
    if (c === 123 || c === 32 || c === 9) return line.slice(0, i);
  }
  return line;
}

/** The samples of the names read here, by name; a name may come in several families. */
function collect(families: PrometheusFamily[]): Map<string, Series[]> {
  const byName = new Map<string, Series[]>();
  const seen = new Set<string>();
  for (const family of families) {
    if (!WANTED.has(family.name)) continue;
    let list = byName.get(family.name);
    if (list === undefined) byName.set(family.name, (list = []));
    for (const sample of family.metrics) {
      const labels = sample.labels ?? {};
      const key = `${family.name}${labelKey(labels, "")}`;
      if (seen.has(key)) throw new Invalid("parse_error", `duplicate series ${JSON.stringify(key)}`);
      seen.add(key);
      list.push({ labels, value: sample.value });
    }
  }
  return byName;
}

/** Non-negative finite values of every series of a gauge; at least one series must exist. */
function gauge(series: Map<string, Series[]>, name: string): number[] {
  const list = series.get(name) ?? [];
  if (list.length === 0) throw new Invalid("missing_metric", `no ${name}`);
  return list.map((s) => {
    const value = sampleValue(name, s);
    if (!(Number.isFinite(value) && value >= 0)) {
      throw new Invalid("invalid_value", `${name}${labelKey(s.labels)} is ${value}, not a finite number >= 0`);
    }
    return value;
  });
}

/** Usage is a fraction per engine or model, so several series are averaged, not summed. */
function kvUsage(series: Map<string, Series[]>): number {
  const name = KV_USAGE.find((n) => (series.get(n) ?? []).length > 0);
  if (name === undefined) throw new Invalid("missing_metric", `no ${KV_USAGE.join(" (or ")})`);
  const values = gauge(series, name);
  const outside = values.find((v) => v > 1);
  if (outside !== undefined) throw new Invalid("invalid_value", `${name} is ${outside}, not a fraction in [0, 1]`);
  return sum(values) / values.length;
}

/**
 * num_gpu_blocks x block_size summed over engines. An info metric carries its numbers in labels, and
 * vLLM may show num_gpu_blocks="None" before its memory profiling: capacity is then unknown, which is
 * no reason to reject the scrape.
 */
function capacityTokens(list: Series[] | undefined): number | undefined {
  if (list === undefined || list.length === 0) return undefined;
  let tokens = 0;
  for (const { labels } of list) {
    const blockSize = integerLabel(labels.block_size);
    const blocks = integerLabel(labels.num_gpu_blocks);
    if (blockSize === undefined || blocks === undefined) return undefined;
    tokens += blockSize * blocks;
  }
  return Number.isSafeInteger(tokens) ? tokens : undefined;
}

interface Group {
  labels: string;
  buckets: Map<number, number>;
  sum?: number;
  count?: number;
}

/**
 * The cumulative histogram of the first of `names` that is present, its series (one per model or
 * engine) added bucket by bucket; they must share their bounds.
 */
function histogram(series: Map<string, Series[]>, names: string[]): ScrapedHistogram | undefined {
  const name = names.find((base) => HISTOGRAM_SUFFIXES.some((suffix) => (series.get(base + suffix) ?? []).length > 0));
  if (name === undefined) return undefined;

  const groups = new Map<string, Group>();
  const groupOf = (labels: Record<string, string>) => {
    const key = labelKey(labels);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { labels: key, buckets: new Map() }));
    return group;
  };
  for (const s of series.get(`${name}_bucket`) ?? []) {
    const le = parseNumber(s.labels.le);
    if (le === undefined || Number.isNaN(le)) {
      throw new Invalid("invalid_histogram", `${name}_bucket${labelKey(s.labels)} has no numeric le`);
    }
    const group = groupOf(s.labels);
    if (group.buckets.has(le)) throw new Invalid("invalid_histogram", `${name}${group.labels} repeats le=${le}`);
    group.buckets.set(le, nonNegative(`${name}_bucket`, s));
  }
  for (const s of series.get(`${name}_sum`) ?? []) groupOf(s.labels).sum = nonNegative(`${name}_sum`, s);
  for (const s of series.get(`${name}_count`) ?? []) groupOf(s.labels).count = nonNegative(`${name}_count`, s);

  let merged: ScrapedHistogram | undefined;
  for (const group of groups.values()) {
    const one = checkedGroup(name, group);
    if (merged === undefined) {
      merged = one;
    } else if (one.le.length !== merged.le.length || one.le.some((le, i) => le !== merged!.le[i])) {
      throw new Invalid("invalid_histogram", `${name}${group.labels} has other bucket bounds than its other series`);
    } else {
      for (let i = 0; i < one.counts.length; i++) merged.counts[i]! += one.counts[i]!;
      merged.sum += one.sum;
      merged.count += one.count;
    }
  }
  if (merged !== undefined) total(name, [merged.sum, merged.count]);
  return merged;
}

function checkedGroup(name: string, group: Group): ScrapedHistogram {
  const where = `${name}${group.labels}`;
  if (group.sum === undefined || group.count === undefined) {
    throw new Invalid("invalid_histogram", `${where} lacks its _sum or _count`);
  }
  const le = [...group.buckets.keys()].sort((a, b) => a - b);
  if (le.length === 0 || le[le.length - 1] !== Infinity) {
    throw new Invalid("invalid_histogram", `${where} has no le="+Inf" bucket`);
  }
  const counts = le.map((bound) => group.buckets.get(bound)!);
  for (let i = 1; i < counts.length; i++) {
    if (counts[i]! < counts[i - 1]!) {
      throw new Invalid("invalid_histogram", `${where} is not cumulative: le=${le[i]} counts fewer than le=${le[i - 1]}`);
    }
  }
  if (counts[counts.length - 1] !== group.count) {
    throw new Invalid("invalid_histogram", `${where} counts ${group.count} but its +Inf bucket ${counts[counts.length - 1]}`);
  }
  return { le, counts, sum: group.sum, count: group.count };
}

function nonNegative(name: string, s: Series): number {
  const value = sampleValue(name, s);
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new Invalid("invalid_value", `${name}${labelKey(s.labels)} is ${value}, not a finite number >= 0`);
  }
  return value;
}

function sampleValue(name: string, s: Series): number {
  const value = parseNumber(s.value);
  if (value === undefined) throw new Invalid("parse_error", `${name}${labelKey(s.labels)} has value ${JSON.stringify(s.value)}`);
  return value;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A sample value or `le` as the text format writes them (Go float syntax, ±Inf, NaN). */
function parseNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (DECIMAL.test(text)) return Number(text);
  switch (text.toLowerCase()) {
    case "+inf":
    case "inf":
    case "+infinity":
    case "infinity":
      return Infinity;
    case "-inf":
    case "-infinity":
      return -Infinity;
    case "nan":
      return NaN;
    default:
      return undefined;
  }
}

/** A label holding a non-negative integer, as cache_config_info writes its block counts. */
function integerLabel(text: string | undefined): number | undefined {
  return text !== undefined && /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}

/**
 * `{a="1",b="2"}` with the labels sorted: identifies a series within its family. `le` is left out
 * unless told otherwise, so the buckets of one histogram series share a key.
 */
function labelKey(labels: Record<string, string>, omit = "le"): string {
  const parts = Object.entries(labels)
    .filter(([key]) => key !== omit)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** The sum of several series, which can overflow where none of them does. */
function total(name: string, values: number[]): number {
  const value = sum(values);
  if (!Number.isFinite(value)) throw new Invalid("invalid_value", `${name} adds up to ${value} over its series`);
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function failure(cause: VllmParseCause, message: string): VllmParseResult {
  return { ok: false, cause, message: message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message };
}
