// The brute-force oracle: enumerates every candidate pair of one request, computes each pair's numbers
// directly, and gives the exact probability SPEC.md §2 assigns to each pair. Tests hold the kernel's
// choices against it; it is far too slow for the pick path.

import { denseLinks } from "./links.js";
import { podValues } from "./twin.js";
import type { OptimizerParams, Outcome, PickRequest, PoolSnapshot, TopologyParams } from "./types.js";
import { ROLE_DECODE, ROLE_ELIGIBLE, ROLE_PREFILL } from "./types.js";

export interface OraclePair {
  /** Prefill pod index; equal to d for a local pair. */
  p: number;
  d: number;
  local: boolean;
  linkClass: "node" | "rack" | "cross" | "local";
  ttftMs: number;
  tpotMs: number;
  e2eMs: number;
  positive: boolean;
  /** NaN without any SLO. */
  blended: number;
  /** Probability of this pair under each outcome that can pick it. */
  prob: number;
  byOutcome: Partial<Record<Outcome, number>>;
}

export interface OracleAnswer {
  pairs: OraclePair[];
  /** Probability that the request is shed; 1 or 0. */
  shed: number;
  noCandidates: boolean;
}

const TWO_POW_32 = 4294967296;

export function oracle(snap: PoolSnapshot, params: OptimizerParams, topology: TopologyParams, req: PickRequest): OracleAnswer {
  const loads = { prefillQueueMs: snap.prefillQueueMs, decodeQueueMs: snap.decodeQueueMs, tpotLoadMs: snap.tpotLoadMs };
  const v = podValues(snap, loads, req, topology, params.transferOverheadMs);
  const links = denseLinks(snap);
  const topo = topology.kvBytesPerToken > 0 && links.hasLinks;
  const eligible = (i: number, role: number) => (snap.roles[i] & ROLE_ELIGIBLE) !== 0 && (snap.roles[i] & role) !== 0;
  const P: number[] = [];
  const D: number[] = [];
  for (let i = 0; i < snap.pods; i++) {
    if (eligible(i, ROLE_PREFILL)) P.push(i);
    if (eligible(i, ROLE_DECODE)) D.push(i);
  }
  const hasT = req.sloTtftMs !== undefined;
  const hasP = req.sloTpotMs !== undefined;
  const budgetT = hasT ? (req.sloTtftMs as number) * params.sloBufferFactor : 0;
  const budgetP = hasP ? (req.sloTpotMs as number) * params.sloBufferFactor : 0;
  const blend = (ttft: number, tpot: number) =>
    (hasT ? params.ttftWeight * (budgetT - ttft) : 0) + (hasP ? params.tpotWeight * (budgetP - tpot) : 0);

  const pairs: OraclePair[] = [];
  const add = (p: number, d: number, local: boolean, linkClass: OraclePair["linkClass"], ttft: number) => {
    const tpot = v.t[d];
    pairs.push({
      p,
      d,
      local,
      linkClass,
      ttftMs: ttft,
      tpotMs: tpot,
      e2eMs: ttft + tpot * req.outputTokens,
      positive: (!hasT || ttft <= budgetT) && (!hasP || tpot <= budgetP),
      blended: hasT || hasP ? blend(ttft, tpot) : NaN,
      prob: 0,
      byOutcome: {},
    });
  };
  let remote = 0;
  for (const d of D) {
    for (const p of P) {
      if (p === d) continue;
      remote++;
      const k = !topo ? 2 : links.nodeOf[p] === links.nodeOf[d] ? 0 : links.rackOf[p] === links.rackOf[d] ? 1 : 2;
      add(p, d, false, (["node", "rack", "cross"] as const)[k], v.a[p] + (v.b[d] + v.transfer[k]));
    }
  }
  const mode = params.localPrefill;
  const localAllowed = D.length > 0 && (remote === 0 || mode === "compete" || (mode === "threshold" && v.uncached < params.pdThreshold));
  if (localAllowed) for (const d of D) add(d, d, true, "local", v.l[d]);
  if (pairs.length === 0) return { pairs, shed: 0, noCandidates: true };

  const lowestPair = (a: OraclePair, b: OraclePair) => a.p - b.p || a.d - b.d;
  const give = (pair: OraclePair, outcome: Outcome, prob: number) => {
    pair.prob += prob;
    pair.byOutcome[outcome] = (pair.byOutcome[outcome] ?? 0) + prob;
  };

  if (!hasT && !hasP) {
    let best = Infinity;
    for (const x of pairs) best = Math.min(best, x.e2eMs);
    give(pairs.filter((x) => x.e2eMs === best).sort(lowestPair)[0], "no_slo", 1);
    return { pairs, shed: 0, noCandidates: false };
  }
  const positives = pairs.filter((x) => x.positive);
  const negatives = pairs.filter((x) => !x.positive);
  const sheddable = req.priority < 0;
  if (positives.length === 0 && sheddable && params.shedSheddable) return { pairs, shed: 1, noCandidates: false };

  let rest = 1;
  if (!sheddable && negatives.length > 0) {
    const explore = Math.min(Math.ceil(params.negativeHeadroomProb * TWO_POW_32) / TWO_POW_32, 1);
    for (const x of negatives) give(x, "explore", explore / negatives.length);
    rest -= explore;
  }
  if (positives.length > 0) {
    // Loops, not Math.min(...values): spreading 10^5 or more values overflows the stack.
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of positives) {
      lo = Math.min(lo, x.blended);
      hi = Math.max(hi, x.blended);
    }
    if (params.headroomStrategy === "best") {
      give(positives.filter((x) => x.blended === hi).sort(lowestPair)[0], "positive_headroom", rest);
    } else {
      const w = positives.map((x) => (params.headroomStrategy === "most" ? x.blended - lo + 1 : hi - x.blended + 1));
      const sum = w.reduce((s, x) => s + x, 0);
      positives.forEach((x, i) => give(x, "positive_headroom", (rest * w[i]) / sum));
    }
  } else {
    let lo = Infinity;
    for (const x of negatives) lo = Math.min(lo, x.blended);
    const w = negatives.map((x) => x.blended - lo + 1);
    const sum = w.reduce((s, x) => s + x, 0);
    negatives.forEach((x, i) => give(x, "negative_headroom", (rest * w[i]) / sum));
  }
  return { pairs, shed: 0, noCandidates: false };
}
