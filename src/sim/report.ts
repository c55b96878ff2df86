// Reports of a sweep: goodput per (scenario, policy), a Markdown table of attainment and latency, and
// an SVG plot of attainment against offered rate per scenario. Plain strings, no dependencies.

import type { Capacity } from "./capacity.js";
import { goodput, type RunSummary } from "./run.js";

export interface SweepPoint {
  policy: string;
  fraction: number;
  rateRps: number;
  summary: RunSummary;
}

export interface ScenarioSweep {
  name: string;
  description: string;
  capacity: Capacity;
  policies: string[];
  points: SweepPoint[];
}

export interface Goodput {
  /** Largest swept rate with attainment >= 90 % (0 when none). */
  goodputRps: number;
  goodputFraction: number;
  /**
   * Where attainment first falls below 90 %, interpolated linearly between the last swept rate at or
   * above it and the next one: a finer reading of the same curve than the 10 % grid gives.
   */
  crossingRps: number;
}

export const ATTAINMENT_TARGET = 0.9;

export function goodputOf(sweep: ScenarioSweep, policy: string): Goodput {
  // A rate that scored no request (attainment NaN) says nothing about the curve.
  const points = measured(sweep.points.filter((p) => p.policy === policy)).sort((a, b) => a.rateRps - b.rateRps);
  const curve = points.map((p) => ({ rateRps: p.rateRps, attainment: p.summary.attainment }));
  const rps = goodput(curve, ATTAINMENT_TARGET);
  let crossing = 0;
  for (let i = 0; i < curve.length; i++) {
    const p = curve[i];
    if (p.attainment >= ATTAINMENT_TARGET) {
      crossing = p.rateRps;
      continue;
    }
    const prev = curve[i - 1];
    if (prev !== undefined && prev.attainment >= ATTAINMENT_TARGET) {
      crossing = prev.rateRps + ((prev.attainment - ATTAINMENT_TARGET) / (prev.attainment - p.attainment)) * (p.rateRps - prev.rateRps);
    }
    break;
  }
  return { goodputRps: rps, goodputFraction: rps / sweep.capacity.nominalRps, crossingRps: crossing };
}

/** Points with an attainment: a rate that scored no request has none. */
function measured(points: readonly SweepPoint[]): SweepPoint[] {
  return points.filter((p) => Number.isFinite(p.summary.attainment));
}

/**
 * A fraction as a percentage with one decimal, rounded down so that a miss never reads as the target
 * (0.8997 prints 89.9, not 90.0); "n/a" for none. The epsilon keeps 0.57 (569.999... per mille) at 57.0.
 */
export function pct(x: number): string {
  return Number.isFinite(x) ? (Math.floor(1000 * x + 1e-9) / 10).toFixed(1) : "n/a";
}

const ms = (x: number) => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)) : "–");
const rps = (x: number) => x.toFixed(1);

/** The Markdown report: goodput across scenarios, then per scenario its capacity, attainment grid and latencies. */
export function markdownReport(sweeps: readonly ScenarioSweep[], command: string): string {
  const out: string[] = [];
  out.push("# Cluster simulator results", "");
  out.push(`Produced by \`${command}\` from the scenario files in \`bench/scenarios/\`. Attainment is the share of requests meeting both their TTFT and TPOT targets; goodput is the largest swept rate with at least ${pct(ATTAINMENT_TARGET)} % attainment (in parentheses: the interpolated rate where attainment crosses ${pct(ATTAINMENT_TARGET)} %).`, "");
  const policies = [...new Set(sweeps.flatMap((s) => s.policies))];
  out.push("## Goodput (requests/s)", "");
  out.push(`| policy | ${sweeps.map((s) => `${s.name} (nominal ${rps(s.capacity.nominalRps)})`).join(" | ")} |`);
  out.push(`| --- | ${sweeps.map(() => "---:").join(" | ")} |`);
  for (const policy of policies) {
    const cells = sweeps.map((s) => {
      if (!s.policies.includes(policy)) return "";
      const g = goodputOf(s, policy);
      return `${rps(g.goodputRps)} (${rps(g.crossingRps)})`;
    });
    out.push(`| ${policy} | ${cells.join(" | ")} |`);
  }
  out.push("");
  for (const s of sweeps) {
    const c = s.capacity;
    out.push(`## ${s.name}`, "");
    out.push(`${s.description}. Nominal capacity ${rps(c.nominalRps)} requests/s: prefill ${rps(c.prefillRps)}, decode ${rps(c.decodeRps)} (mean ISL ${c.meanInputTokens.toFixed(0)}, mean OSL ${c.meanOutputTokens.toFixed(0)} tokens). Plot: \`sim-${s.name}.svg\`.`, "");
    const rates = [...new Map(s.points.map((p) => [p.fraction, p.rateRps])).entries()].sort((a, b) => a[0] - b[0]);
    out.push("Attainment (%) by offered rate (requests/s, fraction of nominal):", "");
    out.push(`| policy | ${rates.map(([f, r]) => `${rps(r)} (${Math.round(f * 100)} %)`).join(" | ")} | goodput |`);
    out.push(`| --- | ${rates.map(() => "---:").join(" | ")} | ---: |`);
    for (const policy of s.policies) {
      const cells = rates.map(([f]) => {
        const p = s.points.find((q) => q.policy === policy && q.fraction === f);
        return p === undefined ? "" : pct(p.summary.attainment);
      });
      const g = goodputOf(s, policy);
      out.push(`| ${policy} | ${cells.join(" | ")} | ${rps(g.goodputRps)} |`);
    }
    out.push("");
    const reference = rates.reduce((best, r) => (Math.abs(r[0] - 0.8) < Math.abs(best[0] - 0.8) ? r : best), rates[0]);
    if (reference !== undefined) {
      out.push(
        `At ${rps(reference[1])} requests/s (${Math.round(reference[0] * 100)} % of nominal): attainment per SLO level, latency percentiles (ms) of finished requests, and for policies that predict, the median of actual minus predicted TTFT and of its prefill part (positive: under-predicted).`,
        "",
      );
      const levels = [...new Set(s.points.flatMap((p) => Object.keys(p.summary.byLevel)))].sort((a, b) => levelRank(a) - levelRank(b));
      out.push(`| policy | ${levels.map((l) => `${l} %`).join(" | ")} | TTFT p50 | p90 | p99 | TPOT p50 | p90 | p99 | unfinished | TTFT error | prefill error |`);
      out.push(`| --- | ${levels.map(() => "---:").join(" | ")} | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
      for (const policy of s.policies) {
        const p = s.points.find((q) => q.policy === policy && q.fraction === reference[0]);
        if (p === undefined) continue;
        const m = p.summary;
        out.push(
          `| ${policy} | ${levels.map((l) => pct(m.byLevel[l] ?? NaN)).join(" | ")} | ${ms(m.ttftP50Ms)} | ${ms(m.ttftP90Ms)} | ${ms(m.ttftP99Ms)} | ${ms(m.tpotP50Ms)} | ${ms(m.tpotP90Ms)} | ${ms(m.tpotP99Ms)} | ${m.unfinished}${m.failed > 0 ? ` (+${m.failed} failed)` : ""} | ${ms(m.ttftErrorP50Ms)} | ${ms(m.prefillErrorP50Ms)} |`,
        );
      }
      out.push("");
    }
  }
  return out.join("\n");
}

/** The default pools' levels in order of strictness, then any others. */
function levelRank(level: string): number {
  const i = ["high", "medium", "low"].indexOf(level);
  return i < 0 ? 3 : i;
}

const COLORS = ["#7f7f7f", "#bcbd22", "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * Attainment (y, 0–100 %) against offered rate (x, requests/s), one line per policy, the 90 % target
 * dashed; rates that scored no request are left out.
 */
export function svgPlot(sweep: ScenarioSweep): string {
  const width = 720;
  const height = 420;
  const m = { left: 60, right: 190, top: 40, bottom: 50 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const nominal = sweep.capacity.nominalRps;
  const maxRate = Math.max(...sweep.points.map((p) => p.rateRps), nominal) * 1.02;
  const x = (r: number) => m.left + (r / maxRate) * plotW;
  const y = (a: number) => m.top + (1 - a) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${m.left}" y="22" font-size="14" font-weight="bold">${escape(sweep.name)}: SLO attainment vs offered rate</text>`);
  for (let k = 0; k <= 10; k++) {
    const a = k / 10;
    parts.push(`<line x1="${m.left}" y1="${y(a)}" x2="${m.left + plotW}" y2="${y(a)}" stroke="#ececec"/>`);
    if (k % 2 === 0) parts.push(`<text x="${m.left - 8}" y="${y(a) + 4}" text-anchor="end">${Math.round(a * 100)}%</text>`);
  }
  // Ticks every 20 % of nominal capacity, labelled in requests/s.
  for (let f = 0.2; f * nominal <= maxRate; f += 0.2) {
    const r = f * nominal;
    parts.push(`<line x1="${x(r)}" y1="${m.top + plotH}" x2="${x(r)}" y2="${m.top + plotH + 5}" stroke="#333"/>`);
    parts.push(`<text x="${x(r)}" y="${m.top + plotH + 18}" text-anchor="middle">${r.toFixed(0)}</text>`);
  }
  parts.push(`<line x1="${x(nominal)}" y1="${m.top}" x2="${x(nominal)}" y2="${m.top + plotH}" stroke="#999" stroke-dasharray="2,3"/>`);
  parts.push(`<line x1="${m.left}" y1="${y(ATTAINMENT_TARGET)}" x2="${m.left + plotW}" y2="${y(ATTAINMENT_TARGET)}" stroke="#444" stroke-dasharray="6,4"/>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${x(nominal) + 4}" y="${m.top + 14}" fill="#777">nominal ${rps(nominal)}</text>`);
  parts.push(`<text x="${m.left + plotW / 2}" y="${height - 12}" text-anchor="middle">offered rate (requests/s; ticks every 20 % of nominal capacity)</text>`);
  parts.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">requests meeting TTFT and TPOT SLOs</text>`);
  sweep.policies.forEach((policy, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = measured(sweep.points.filter((p) => p.policy === policy)).sort((a, b) => a.rateRps - b.rateRps);
    const path = pts.map((p) => `${x(p.rateRps).toFixed(1)},${y(p.summary.attainment).toFixed(1)}`).join(" ");
    parts.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) {
      // The same rounding as the Markdown table, shown on hover.
      const label = `${policy}: ${pct(p.summary.attainment)} % at ${rps(p.rateRps)} req/s`;
      parts.push(`<circle cx="${x(p.rateRps).toFixed(1)}" cy="${y(p.summary.attainment).toFixed(1)}" r="2.5" fill="${color}"><title>${escape(label)}</title></circle>`);
    }
    const ly = m.top + 10 + i * 20;
    const g = goodputOf(sweep, policy);
    parts.push(`<line x1="${m.left + plotW + 15}" y1="${ly}" x2="${m.left + plotW + 35}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${m.left + plotW + 40}" y="${ly + 4}">${escape(policy)} (${rps(g.goodputRps)})</text>`);
  });
  parts.push(`<text x="${m.left + plotW + 15}" y="${m.top + 10 + sweep.policies.length * 20 + 6}" fill="#555">(goodput, req/s)</text>`);
  parts.push("</svg>");
  return parts.join("\n");
}
