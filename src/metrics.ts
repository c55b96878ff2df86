// Prometheus metrics shared by modules that each register their own on the app's Registry: one
// lookup-or-create so two modules (or two instances) asking for the same name share one metric.

import type { Registry } from "prom-client";

/** The metric registered under `name`, or the one `create` registers; a metric of another kind is an error. */
export function registered<T extends object>(registry: Registry, name: string, kind: abstract new (...args: never[]) => T, create: () => T): T {
  const existing = registry.getSingleMetric(name);
  if (existing === undefined) return create();
  if (!(existing instanceof kind)) throw new TypeError(`metric ${name} is already registered as another kind`);
  return existing;
}
