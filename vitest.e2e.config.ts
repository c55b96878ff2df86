import { defineConfig } from "vitest/config";

// `npm run test:e2e`: the gateway end to end (real nginx, headroom and simulated pods as processes on loopback).
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
