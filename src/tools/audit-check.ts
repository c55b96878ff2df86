// `npm run audit:check` (run by CI): `npm audit` of the production dependencies, failing on a high or
// critical advisory unless deploy/audit-allowlist.json accepts it (each entry reviewed: the advisory,
// the package, why it is accepted, and an expiry after which it fails again). When the registry's
// advisory endpoint does not answer (these machines' registry mirror refuses it), nothing can be
// checked: the check says so and passes; it enforces whenever the endpoint answers.

import { spawnSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { shippedFile } from "../paths.js";

export interface AllowEntry {
  /** The advisory's URL (GHSA link) as npm audit reports it. */
  advisory: string;
  package: string;
  reason: string;
  /** YYYY-MM-DD: the entry stops counting after this day. */
  expires: string;
}

export type AuditVerdict =
  | { kind: "unavailable"; message: string }
  | { kind: "checked"; failing: { package: string; severity: string; advisory: string; title: string }[]; allowed: string[]; expired: string[] };

const FAILING = new Set(["high", "critical"]);

interface Via {
  source?: number;
  name?: string;
  title?: string;
  url?: string;
  severity?: string;
}

/** Judges `npm audit --json` output (format 2) against the allowlist on `today` (YYYY-MM-DD). */
export function judgeAudit(report: unknown, allowlist: readonly AllowEntry[], today: string): AuditVerdict {
  const r = report as { vulnerabilities?: Record<string, { severity?: string; via?: (Via | string)[] }>; error?: { summary?: string }; message?: string };
  if (r === null || typeof r !== "object" || r.vulnerabilities === undefined || typeof r.vulnerabilities !== "object") {
    return { kind: "unavailable", message: r?.message ?? r?.error?.summary ?? "npm audit gave no report" };
  }
  const live = allowlist.filter((a) => a.expires >= today);
  const expired = allowlist.filter((a) => a.expires < today).map((a) => a.advisory);
  const failing: { package: string; severity: string; advisory: string; title: string }[] = [];
  const allowed = new Set<string>();
  for (const [pkg, v] of Object.entries(r.vulnerabilities)) {
    for (const via of v.via ?? []) {
      // A string names another vulnerable package; its own entry carries the advisory.
      if (typeof via === "string") continue;
      const severity = via.severity ?? v.severity ?? "unknown";
      if (!FAILING.has(severity)) continue;
      const advisory = via.url ?? `npm:${via.source}`;
      const owner = via.name ?? pkg;
      if (live.some((a) => a.advisory === advisory && a.package === owner)) {
        allowed.add(advisory);
        continue;
      }
      failing.push({ package: owner, severity, advisory, title: via.title ?? "" });
    }
  }
  return { kind: "checked", failing, allowed: [...allowed], expired };
}

function main(): number {
  const allowlist = JSON.parse(readFileSync(shippedFile("deploy", "audit-allowlist.json"), "utf8")) as AllowEntry[];
  const run = spawnSync("npm", ["audit", "--json", "--omit=dev"], { encoding: "utf8", cwd: shippedFile(), timeout: 120_000 });
  let report: unknown;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    report = { message: `npm audit printed no JSON (${run.stderr.trim().split("\n").at(-1) ?? "no output"})` };
  }
  const verdict = judgeAudit(report, allowlist, new Date().toISOString().slice(0, 10));
  if (verdict.kind === "unavailable") {
    process.stderr.write(`audit:check: the advisory endpoint did not answer (${verdict.message}); nothing was checked\n`);
    return 0;
  }
  for (const a of verdict.expired) process.stderr.write(`audit:check: allowlist entry ${a} has expired; review it\n`);
  for (const f of verdict.failing) process.stderr.write(`audit:check: ${f.severity} ${f.package}: ${f.title} (${f.advisory})\n`);
  process.stderr.write(`audit:check: ${verdict.failing.length} unaccepted high or critical advisories, ${verdict.allowed.length} accepted\n`);
  return verdict.failing.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = main();
