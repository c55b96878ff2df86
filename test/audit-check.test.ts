// The dependency audit's verdict (src/tools/audit-check.ts) on npm audit's own report format: high and
// critical advisories fail unless a live allowlist entry accepts them; an expired entry no longer does;
// an endpoint that does not answer is reported as unchecked.

import { describe, expect, it } from "vitest";
import { judgeAudit, type AllowEntry } from "../src/tools/audit-check.js";

// The shape of `npm audit --json` (report format 2), trimmed.
const report = {
  auditReportVersion: 2,
  vulnerabilities: {
    "left-pad": { name: "left-pad", severity: "high", via: [{ source: 1001, name: "left-pad", title: "Prototype pollution", url: "https://github.com/advisories/GHSA-aaaa", severity: "high" }] },
    "uses-left-pad": { name: "uses-left-pad", severity: "high", via: ["left-pad"] },
    tiny: { name: "tiny", severity: "moderate", via: [{ source: 1002, name: "tiny", title: "ReDoS", url: "https://github.com/advisories/GHSA-bbbb", severity: "moderate" }] },
    big: { name: "big", severity: "critical", via: [{ source: 1003, name: "big", title: "RCE", url: "https://github.com/advisories/GHSA-cccc", severity: "critical" }] },
  },
  metadata: {},
};

const entry = (advisory: string, pkg: string, expires: string): AllowEntry => ({ advisory, package: pkg, reason: "reviewed: not reachable from headroom", expires });

describe("judgeAudit", () => {
  it("fails every high and critical advisory without an entry, once each, and ignores lower severities", () => {
    const v = judgeAudit(report, [], "2026-11-23");
    expect(v.kind).toBe("checked");
    if (v.kind !== "checked") return;
    expect(v.failing.map((f) => `${f.package} ${f.severity}`).sort()).toEqual(["big critical", "left-pad high"]);
  });

  it("accepts an advisory with a live entry for its package, not after the entry expires", () => {
    const live = judgeAudit(report, [entry("https://github.com/advisories/GHSA-aaaa", "left-pad", "2026-12-31")], "2026-11-23");
    expect(live.kind === "checked" && live.failing.map((f) => f.package)).toEqual(["big"]);
    expect(live.kind === "checked" && live.allowed).toEqual(["https://github.com/advisories/GHSA-aaaa"]);
    const old = judgeAudit(report, [entry("https://github.com/advisories/GHSA-aaaa", "left-pad", "2026-01-31")], "2026-11-23");
    expect(old.kind === "checked" && old.failing.map((f) => f.package).sort()).toEqual(["big", "left-pad"]);
    expect(old.kind === "checked" && old.expired).toEqual(["https://github.com/advisories/GHSA-aaaa"]);
    // An entry for another package does not accept it.
    const wrong = judgeAudit(report, [entry("https://github.com/advisories/GHSA-aaaa", "other", "2026-12-31")], "2026-11-23");
    expect(wrong.kind === "checked" && wrong.failing).toHaveLength(2);
  });

  it("reports an endpoint that did not answer as unchecked", () => {
    const v = judgeAudit({ message: "405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk", statusCode: 405 }, [], "2026-11-23");
    expect(v).toEqual({ kind: "unavailable", message: expect.stringContaining("405") });
  });
});
