// Prometheus metrics shared by modules that each register their own on the app's Registry: one
// lookup-or-create so two modules (or two instances) asking for the same name share one metric; and
// tallies, the counters of hot paths.

import type { Counter, LabelValues, Registry } from "prom-client";

/** The metric registered under `name`, or the one `create` registers; a metric of another kind is an error. */
export function registered<T extends object>(registry: Registry, name: string, kind: abstract new (...args: never[]) => T, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (!(existing instanceof kind)) throw new TypeError(`metric ${name} is already registered as another kind`);
  return existing;
}

/** One label set's count in a tally, not yet added to its counter; the caller keeps it and adds to `n`. */
export interface TallySlot<L extends string> {
  readonly labels: LabelValues<L>;
  n: number;
}

/**
 * Counts of a hot path, added to their counter when it is collected (each scrape, each `get()`):
 * prom-client hashes the labels of every increment, which costs about as much as a small pick, while
 * a tally's slot is a number its caller keeps. The counter must be created with `collectTallies` as
 * its `collect`.
 */
export class CounterTally<L extends string> {
  private readonly slots = new Map<string, TallySlot<L>>();

  constructor(private readonly counter: Counter<L>) {
    let tallies = talliesOf.get(counter);
    if (tallies === undefined) talliesOf.set(counter, (tallies = new Set()));
    tallies.add(this as CounterTally<string>);
  }

  /** The slot of one label set (finding it costs a hash; keep it). */
  slot(labels: LabelValues<L>): TallySlot<L> {
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    let slot = this.slots.get(key);
    if (slot === undefined) this.slots.set(key, (slot = { labels, n: 0 }));
    return slot;
  }

  /** Adds what the slots counted to the counter. */
  flush(): void {
    for (const slot of this.slots.values()) {
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
export function collectTallies(this: Counter<string>): void {
  for (const tally of talliesOf.get(this) ?? []) tally.flush();
}
