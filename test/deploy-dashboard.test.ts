// The Grafana dashboard (deploy/grafana/headroom.json) against a real running headroom: every metric
// its queries read is one headroom registers and serves on /metrics, and every label a query groups by
// or a legend names is one of that metric's labels, or `pod`, which the ServiceMonitor's scrape adds
// to every series (each replica's planner and main thread are shown apart by it).

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type Harness } from "./fixtures/server-harness.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dashboard = JSON.parse(readFileSync(join(root, "deploy/grafana/headroom.json"), "utf8")) as {
  panels: { title: string; targets: { expr: string; legendFormat: string }[] }[];
};
const targets = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, ...t })));

const METRIC = /\b((?:headroom|llm_d)_[a-z_]+)\b/g;
/** A target label the Prometheus Operator puts on every series it scrapes through a ServiceMonitor. */
const SCRAPE_LABELS = ["pod"];
const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;

let h: Harness;
let exposition: string;

beforeAll(async () => {
  h = await startServer();
  exposition = await (await fetch(`${h.url}/metrics`)).text();
});
afterAll(() => h.close());

/** The registered metric behind a series name (histogram suffixes stripped) and its label names. */
function metricOf(series: string): { name: string; labels: string[]; histogram: boolean } | undefined {
  for (const name of [series, series.replace(HISTOGRAM_SUFFIX, "")]) {
    const metric = h.registry.getSingleMetric(name) as unknown as { labelNames?: string[]; type: string } | undefined;
    if (metric !== undefined) return { name, labels: metric.labelNames ?? [], histogram: metric.type === "histogram" };
  }
  return undefined;
}

describe("deploy/grafana/headroom.json", () => {
  it("has panels for picks, pick latency, attainment, prediction accuracy, planner workers, GPUs and cost", () => {
    const exprs = targets.map((t) => t.expr).join("\n");
    for (const name of [
      "headroom_picks_total",
      "headroom_pick_duration_seconds_bucket",
      "headroom_planner_slo_attainment_ratio",
      "headroom_latency_actual_to_predicted_ratio_bucket",
      "headroom_planner_observed_latency_seconds",
      "headroom_planner_desired_workers",
      "headroom_planner_desired_gpus",
      "headroom_planner_cost_total",
      "llm_d_inference_scheduler_pd_slo_pair_selections_total",
    ]) {
      expect(exprs).toContain(name);
    }
  });

  it.each(targets.map((t) => [`${t.panel}: ${t.expr}`, t] as const))("%s reads metrics headroom serves, by their labels", (_name, t) => {
    const series = [...t.expr.matchAll(METRIC)].map((m) => m[1]);
    expect(series.length).toBeGreaterThan(0);
    const metrics = series.map((s) => {
      const m = metricOf(s);
      expect(m, `${s} is not a headroom metric`).toBeDefined();
      expect(exposition).toContain(`# TYPE ${m!.name} `);
      return m!;
    });
    const grouped = [...t.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1].split(",").map((l) => l.trim()));
    const legend = [...t.legendFormat.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]);
    for (const label of new Set([...grouped, ...legend])) {
      for (const m of metrics) {
        const known = [...m.labels, ...SCRAPE_LABELS, ...(m.histogram ? ["le"] : [])];
        expect(known, `${m.name} has no label ${label}`).toContain(label);
      }
    }
  });
});
