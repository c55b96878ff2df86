// Prometheus metrics shared by modules that each register their own on the app's Registry: one
// lookup-or-create so two modules (or two instances) asking for the same name share one metric; and
// tallies, the counters of hot paths.

import { Counter, type LabelValues, type Registry } from "prom-client";

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

export class CounterTally<L extends string> {
  /** Slots by their label values in labelNames' order, one map level per label. */
  private readonly tree = new Map<LabelValue, unknown>();
  private readonly slots: TallySlot<L>[] = [];

  constructor(
    private readonly counter: Counter<L>,
    private readonly labelNames: readonly L[],
  ) {
    if (labelNames.length > 2) throw new RangeError(`a tally takes at most two labels, got ${labelNames.length}`);
    let tallies = talliesOf.get(counter);
    if (tallies === undefined) talliesOf.set(counter, (tallies = new Set()));
    tallies.add(this as CounterTally<string>);
  }

  /**
   * The slot of these label values, in labelNames' order, found again without building a key or an
   * array: at most two labels (tallies are for hot paths; more is refused when the tally is made).
   */
  slot(a?: LabelValue, b?: LabelValue): TallySlot<L> {
    const given = a === undefined ? 0 : b === undefined ? 1 : 2;
    if (given !== this.labelNames.length) throw new RangeError(`${this.labelNames.length} label values expected, got ${given}`);
    // Under one map level per label; a counter without labels keeps its one slot under "".
    let node = this.tree;
    if (given === 2) {
      let next = node.get(a!) as Map<LabelValue, unknown> | undefined;
      if (next === undefined) node.set(a!, (next = new Map()));
      node = next;
    }
    const key = given === 0 ? "" : given === 1 ? a! : b!;
    let slot = node.get(key) as TallySlot<L> | undefined;
    if (slot === undefined) {
      const values = [a, b];
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]])) as LabelValues<L>;
      node.set(key, (slot = { labels, n: 0 }));
      this.slots.push(slot);
    }
    return slot;
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
