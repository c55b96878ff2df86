// Seeded random numbers for the simulator: independent named streams derived from one seed (so the
// workload's sizes do not change when its arrival rate does), and the distributions the workloads use.
// Never Math.random: a run is a function of its seed.

import { Splitmix32 } from "../kernel/prng.js";

const TWO_POW_32 = 4294967296;

/** A 32-bit hash of a seed and a stream name (FNV-1a over the name, then mixed with the seed). */
export function streamSeed(seed: number, stream: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
  h = Math.imul((h ^ (seed >>> 0)) >>> 0, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Rng {
  private readonly gen: Splitmix32;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    this.gen = new Splitmix32(seed);
  }

  /** The stream `name` of `seed`. */
  static stream(seed: number, name: string): Rng {
    return new Rng(streamSeed(seed, name));
  }

  /** Uniform in [0, 1) with 53 bits of resolution (two 32-bit draws). */
  next(): number {
    const hi = this.gen.next() * TWO_POW_32;
    const lo = this.gen.next() * TWO_POW_32;
    return ((hi >>> 5) * 67108864 + (lo >>> 6)) / 9007199254740992;
  }

  /** A 32-bit unsigned integer. */
  uint32(): number {
    return (this.gen.next() * TWO_POW_32) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** Standard normal (Marsaglia's polar method). */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    for (;;) {
      const u = 2 * this.next() - 1;
      const v = 2 * this.next() - 1;
      const s = u * u + v * v;
      if (s === 0 || s >= 1) continue;
      const f = Math.sqrt((-2 * Math.log(s)) / s);
      this.spareNormal = v * f;
      return u * f;
    }
  }

  /** Gamma(shape, scale) by Marsaglia and Tsang; shape < 1 through Gamma(shape + 1) x U^(1/shape). */
  gamma(shape: number, scale: number): number {
    if (shape < 1) {
      const u = 1 - this.next();
      return this.gamma(shape + 1, scale) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.next();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * scale;
    }
  }

  /** Lognormal with the given median (e^mu) and sigma. */
  lognormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }
}
