// Prometheus metrics shared by modules that each register their own on the app's Registry: one
// lookup-or-create so two modules (or two instances) asking for the same name share one metric; and
// tallies, the counters and histograms of hot paths.

import { Counter, type LabelValues, type Metric, type Registry } from "prom-client";

/** The metric registered under `name`, or the one `create` registers; a metric of another kind is an error. */
export function registered<T extends object>(registry: Registry, name: string, kind: abstract new (...args: never[]) => T, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (!(existing instanceof kind)) throw new TypeError(`metric ${name} is already registered as another kind`);
  return existing;
}

/** One label set's count in a tally, not yet added to its counter; callers add to `n`. */
export interface TallySlot<L extends string> {
  readonly labels: LabelValues<L>;
  n: number;
}

type LabelValue = string | number;

/**
 * A counter of a hot path, registered under `name` (or found there), counted through a tally: plain
 * numbers per label set, added to the counter when it is collected (each scrape, each `get()`).
 * prom-client hashes the labels of every increment, which costs about as much as a small pick.
 */
export function tallied<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): CounterTally<L> {
  const counter = registered(registry, name, Counter<L>, () => new Counter({ name, help, labelNames, registers: [registry], collect: collectTallies }));
  return new CounterTally(counter, labelNames);
}

/**
 * The slots of a hot-path metric, one per label set, found again without building a key or an array:
 * one map level per label, at most two labels (more is refused when the metric is made).
 */
class LabelSlots<S> {
  private readonly tree = new Map<LabelValue, unknown>();

  constructor(
    private readonly labelNames: readonly string[],
    /** Makes the slot of a label set seen for the first time. */
    private readonly make: (labels: LabelValues<string>) => S,
  ) {
    if (labelNames.length > 2) throw new RangeError(`a tally takes at most two labels, got ${labelNames.length}`);
  }

  /** The slot of these label values, in labelNames' order. */
  get(a?: LabelValue, b?: LabelValue): S {
    const given = a === undefined ? 0 : b === undefined ? 1 : 2;
    if (given !== this.labelNames.length) throw new RangeError(`${this.labelNames.length} label values expected, got ${given}`);
    // Under one map level per label; a metric without labels keeps its one slot under "".
    let node = this.tree;
    if (given === 2) {
      let next = node.get(a!) as Map<LabelValue, unknown> | undefined;
      if (next === undefined) node.set(a!, (next = new Map()));
      node = next;
    }
    const key = given === 0 ? "" : given === 1 ? a! : b!;
    let slot = node.get(key) as S | undefined;
    if (slot === undefined) {
      const values = [a, b];
      node.set(key, (slot = this.make(Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]])))));
    }
    return slot;
  }
}

export class CounterTally<L extends string> {
  private readonly labelSlots: LabelSlots<TallySlot<L>>;
  private readonly slots: TallySlot<L>[] = [];

  constructor(
    private readonly counter: Counter<L>,
    labelNames: readonly L[],
  ) {
    this.labelSlots = new LabelSlots(labelNames, (labels) => {
      const slot = { labels: labels as LabelValues<L>, n: 0 };
      this.slots.push(slot);
      return slot;
    });
    let tallies = talliesOf.get(counter);
    if (tallies === undefined) talliesOf.set(counter, (tallies = new Set()));
    tallies.add(this as CounterTally<string>);
  }

  /** The slot of these label values, in labelNames' order (tallies are for hot paths: at most two labels). */
  slot(a?: LabelValue, b?: LabelValue): TallySlot<L> {
    return this.labelSlots.get(a, b);
  }

  /** Adds what the slots counted to the counter. */
  flush(): void {
    for (const slot of this.slots) {
      if (slot.n === 0) continue;
      this.counter.inc(slot.labels, slot.n);
      slot.n = 0;
    }
  }

  /** Flushes and leaves the counter (its owner is closing). */
  close(): void {
    this.flush();
    talliesOf.get(this.counter)?.delete(this as CounterTally<string>);
  }
}

const talliesOf = new WeakMap<Counter<string>, Set<CounterTally<string>>>();

/** A tallied counter's `collect`: brings its tallies' counts in. */
function collectTallies(this: Counter<string>): void {
  for (const tally of talliesOf.get(this) ?? []) tally.flush();
}

/**
 * A histogram of a hot path, registered under `name` (or found there): the tallied counterpart of
 * `tallied` for counters, read by the registry as prom-client's Histogram would be. One or two labels.
 */
export function talliedHistogram<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], buckets: readonly number[]): TalliedHistogram<L> {
  return registered(registry, name, TalliedHistogram<L>, () => new TalliedHistogram(registry, name, help, labelNames, buckets));
}

/** One label set of a tallied histogram: observations per bucket (the last past every bound), their sum and count. */
export class HistogramSlot {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly histogram: TalliedHistogram<string>,
    readonly labels: LabelValues<string>,
  ) {
    this.counts = new Float64Array(histogram.upperBounds.length + 1);
  }

  /** As prom-client's Histogram observes: into the first bucket whose bound is at least the value; not a finite number is a TypeError. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.histogram.upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    // prom-client exports a label set from its first observation on, in the order they came.
    if (this.count++ === 0) this.histogram.observed.push(this);
  }
}

/** A value in prom-client's export of a histogram; `sharedLabels` are the label set's, `labels` the line's own (le). */
interface ExportedValue {
  labels: LabelValues<string>;
  sharedLabels?: LabelValues<string>;
  value: number;
  metricName: string;
  exemplar?: null;
}

interface HistogramExport {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: ExportedValue[];
}

/**
 * A histogram of a hot path: a slot per label set, found once by its user, counts plain numbers, and
 * the registry reads them in the shape prom-client's Histogram exports (text and JSON alike; a
 * property test holds the two equal). prom-client validates and hashes the labels of every
 * observation: 413–598 ns against 17–24 for a slot (`observe-histogram` in bench:pick-path).
 */
export class TalliedHistogram<L extends string> {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly upperBounds: readonly number[];
  /** Slots observed at least once since the last reset, in the order of their first observation (a slot adds itself). */
  observed: HistogramSlot[] = [];
  private readonly slots: LabelSlots<HistogramSlot>;

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    buckets: readonly number[],
  ) {
    if (labelNames.length === 0) throw new RangeError("a tallied histogram needs a label");
    if (labelNames.includes("le" as L)) throw new RangeError("le is a reserved label name");
    this.slots = new LabelSlots(labelNames, (labels) => new HistogramSlot(this as TalliedHistogram<string>, labels));
    // In the order given, as prom-client keeps them (ascending, for the buckets to mean anything).
    this.upperBounds = [...buckets];
    // The registry takes any object with its metrics' shape; its typings name only prom-client's four.
    registry.registerMetric(this as unknown as Metric);
  }

  /** The slot of these label values, in labelNames' order (one or two labels). */
  labels(a: string, b?: string): HistogramSlot {
    return this.slots.get(a, b);
  }

  /** What Registry.metrics() reads: each line's labels apart from its label set's. */
  async getForPromString(): Promise<HistogramExport> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.exported() };
  }

  /** What Registry.getMetricsAsJSON() reads: each line's labels merged. */
  async get(): Promise<HistogramExport> {
    const values = this.exported().map(({ labels, sharedLabels, value, metricName, exemplar }) => ({ value, metricName, exemplar, labels: { ...labels, ...sharedLabels } }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const slot of this.observed) {
      slot.counts.fill(0);
      slot.sum = 0;
      slot.count = 0;
    }
    this.observed = [];
  }

  private exported(): ExportedValue[] {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const slot of this.observed) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += slot.counts[i];
        values.push({ labels: { le }, value: cumulative, metricName: bucket, exemplar: null, sharedLabels: slot.labels });
      });
      values.push(
        { labels: { le: "+Inf" }, value: slot.count, metricName: bucket, exemplar: null, sharedLabels: slot.labels },
        { labels: {}, value: slot.sum, metricName: `${this.name}_sum`, exemplar: undefined, sharedLabels: slot.labels },
        { labels: {}, value: slot.count, metricName: `${this.name}_count`, exemplar: undefined, sharedLabels: slot.labels },
      );
    }
    return values;
  }
}
