// A pool's observations over one adjustment interval: request count and rate, mean ISL/OSL, TTFT and
// TPOT at the pool's percentile (HDR histograms), the violation rate against the pool's targets, and a
// short window of arrivals for burst detection. Recording is O(1) because it runs on the pick path.

import * as hdr from "hdr-histogram-js";
import type { Clock } from "../clock.js";
import type { CompletionObservation, IntervalObservation, PoolUtilization } from "./types.js";

export const OBSERVER_DEFAULTS = Object.freeze({
  /** Arrivals over this window give the short-window rate that burst protection compares. */
  burstWindowMs: 10_000,
  /** The window is kept as this many buckets (its resolution is window / buckets). */
  burstBuckets: 10,
});

export interface PoolObserverOptions {
  clock: Clock;
  /** The latency percentile the pool watches, e.g. 95. */
  percentile: number;
  targets: { ttftMs: number; tpotMs: number };
  burstWindowMs?: number;
  burstBuckets?: number;
}

/** Latencies are recorded in microseconds: integers with three significant digits cover 1 µs to hours. */
const US_PER_MS = 1000;

/**
 * The longest latency the histograms hold: one hour. A longer one is recorded as one hour (and
 * counted): past about 1e16 µs the histogram's own arithmetic breaks (`mean` throws, percentiles read 0).
 */
export const MAX_RECORDED_LATENCY_MS = 3_600_000;
const HIGHEST_TRACKABLE_US = MAX_RECORDED_LATENCY_MS * US_PER_MS;

function latencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_TRACKABLE_US, numberOfSignificantValueDigits: 3 });
}

function valid(v: number | undefined): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

export class PoolObserver {
  private readonly ttft = latencyHistogram();
  private readonly tpot = latencyHistogram();
  private startMs: number;
  private completions = 0;
  private arrivals = 0;
  private islSum = 0;
  private islCount = 0;
  private oslSum = 0;
  private oslCount = 0;
  private violations = 0;
  private ttftViolations = 0;
  private tpotViolations = 0;
  private clampedLatencies = 0;

  private readonly bucketMs: number;
  private readonly buckets: Uint32Array;
  /** Index (time / bucketMs) of the newest bucket. */
  private bucketIndex: number;
  private readonly createdMs: number;

  constructor(private readonly options: PoolObserverOptions) {
    this.startMs = options.clock.nowMs();
    this.createdMs = this.startMs;
    const windowMs = options.burstWindowMs ?? OBSERVER_DEFAULTS.burstWindowMs;
    const n = options.burstBuckets ?? OBSERVER_DEFAULTS.burstBuckets;
    this.bucketMs = windowMs / n;
    this.buckets = new Uint32Array(n);
    this.bucketIndex = Math.floor(this.startMs / this.bucketMs);
  }

  /** Targets from a reloaded configuration: completions from now on are counted against them. */
  setTargets(targets: { ttftMs: number; tpotMs: number }): void {
    this.options.targets = targets;
  }

  observeCompletion(c: CompletionObservation): void {
    this.completions++;
    const { targets } = this.options;
    let violated = !c.ok;
    if (valid(c.ttftMs)) {
      this.record(this.ttft, c.ttftMs);
      if (c.ttftMs > targets.ttftMs) {
        this.ttftViolations++;
        violated = true;
      }
    }
    if (valid(c.tpotMs)) {
      this.record(this.tpot, c.tpotMs);
      if (c.tpotMs > targets.tpotMs) {
        this.tpotViolations++;
        violated = true;
      }
    }
    if (violated) this.violations++;
    if (valid(c.inputTokens)) {
      this.islSum += c.inputTokens;
      this.islCount++;
    }
    if (valid(c.outputTokens)) {
      this.oslSum += c.outputTokens;
      this.oslCount++;
    }
  }

  observeArrival(): void {
    this.arrivals++;
    this.rotate(this.options.clock.nowMs());
    this.buckets[this.bucketIndex % this.buckets.length]++;
  }

  /** Arrivals over the last burst window (or since the observer started, if that is shorter), and their rate. */
  shortWindow(): { arrivals: number; ratePerS: number; windowMs: number } {
    const now = this.options.clock.nowMs();
    this.rotate(now);
    let arrivals = 0;
    for (let i = 0; i < this.buckets.length; i++) arrivals += this.buckets[i]!;
    const oldestStartMs = (this.bucketIndex - this.buckets.length + 1) * this.bucketMs;
    const windowMs = Math.max(now - Math.max(oldestStartMs, this.createdMs), this.bucketMs);
    return { arrivals, ratePerS: (arrivals * 1000) / windowMs, windowMs };
  }

  /** Closes the interval at the clock's time, returns what it saw, and starts the next one (even if reading it throws). */
  drain(utilization?: PoolUtilization): IntervalObservation {
    const endMs = this.options.clock.nowMs();
    try {
      return this.read(endMs, utilization);
    } finally {
      this.ttft.reset();
      this.tpot.reset();
      this.startMs = endMs;
      this.completions = this.arrivals = 0;
      this.islSum = this.islCount = this.oslSum = this.oslCount = 0;
      this.violations = this.ttftViolations = this.tpotViolations = this.clampedLatencies = 0;
    }
  }

  private read(endMs: number, utilization: PoolUtilization | undefined): IntervalObservation {
    const seconds = Math.max(endMs - this.startMs, 1) / 1000;
    const pct = this.options.percentile;
    const at = (h: hdr.Histogram) => (h.totalCount > 0 ? h.getValueAtPercentile(pct) / US_PER_MS : undefined);
    const mean = (h: hdr.Histogram) => (h.totalCount > 0 ? h.mean / US_PER_MS : undefined);
    const meanIsl = this.islCount > 0 ? this.islSum / this.islCount : undefined;
    const meanOsl = this.oslCount > 0 ? this.oslSum / this.oslCount : undefined;
    return {
      startMs: this.startMs,
      endMs,
      completions: this.completions,
      arrivals: this.arrivals,
      ratePerS: (this.arrivals > 0 ? this.arrivals : this.completions) / seconds,
      meanIsl,
      meanOsl,
      ttftMs: at(this.ttft),
      tpotMs: at(this.tpot),
      ttftMeanMs: mean(this.ttft),
      tpotMeanMs: mean(this.tpot),
      ttftSamples: this.ttft.totalCount,
      tpotSamples: this.tpot.totalCount,
      violations: this.violations,
      ttftViolations: this.ttftViolations,
      tpotViolations: this.tpotViolations,
      violationRate: this.completions > 0 ? this.violations / this.completions : undefined,
      clampedLatencies: this.clampedLatencies,
      tokensPerS: (this.islSum + this.oslSum) / seconds,
      utilization,
    };
  }

  /** A latency in whole microseconds, clamped to what the histogram holds. */
  private record(h: hdr.Histogram, ms: number): void {
    if (ms > MAX_RECORDED_LATENCY_MS) this.clampedLatencies++;
    h.recordValue(Math.max(1, Math.min(HIGHEST_TRACKABLE_US, Math.round(ms * US_PER_MS))));
  }

  /** Moves the bucket ring forward to `nowMs`, emptying the buckets it passes. */
  private rotate(nowMs: number): void {
    const index = Math.floor(nowMs / this.bucketMs);
    if (index <= this.bucketIndex) return;
    const n = this.buckets.length;
    const steps = Math.min(index - this.bucketIndex, n);
    for (let s = 1; s <= steps; s++) this.buckets[(this.bucketIndex + s) % n] = 0;
    this.bucketIndex = index;
  }
}
