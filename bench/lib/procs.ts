// Child processes of the benchmark (relays, the peer's workers, the API server): each runs in
// its own process so its RSS and CPU are its own. Every child is tracked and killed on exit,
// even when the bench fails.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { buildSync } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { log } from './util';

export const ROOT = path.resolve(import.meta.dirname, '../..');

const children = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export type Child = {
  pid: number;
  /** Resolves once the child printed a line matching the readiness pattern. */
  ready: Promise<void>;
  /** Peak resident set (VmHWM) so far, MB. */
  peakRssMb(): number | null;
  /** User + system CPU seconds so far. */
  cpuSeconds(): number | null;
  /** Read and write system calls so far (/proc/<pid>/io syscr, syscw). */
  syscalls(): { reads: number; writes: number } | null;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Last lines of output, for error messages. */
  tail(): string;
};

export type SpawnOptions = {
  label: string;
  /** A .ts file (run through tsx) or a bundled .mjs / .js file (plain node). */
  script: string;
  env: NodeJS.ProcessEnv;
  /** A line that says the child is ready; without it, the caller checks readiness itself. */
  readyPattern?: RegExp;
  nodeArgs?: string[];
  readyTimeoutMs?: number;
};

export function spawnChild(options: SpawnOptions): Child {
  // JavaScript (a bundle) runs as is; TypeScript through tsx, compiled in-process.
  const loader = /\.m?js$/.test(options.script) ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, options.script], {
    cwd: ROOT,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: string[] = [];
  let onReady: () => void = () => {};
  let onFail: (error: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  const timer = setTimeout(
    () => onFail(new Error(`${options.label} not ready after ${options.readyTimeoutMs ?? 30_000} ms:\n${lines.join('\n')}`)),
    options.readyPattern ? (options.readyTimeoutMs ?? 30_000) : 0,
  );
  if (!options.readyPattern) {
    clearTimeout(timer);
    onReady();
  }
  for (const stream of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 40) lines.shift();
      if (options.readyPattern?.test(line)) {
        clearTimeout(timer);
        onReady();
      }
      if (process.env.BENCH_VERBOSE) log(`${options.label}: ${line}`);
    });
  }
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      clearTimeout(timer);
      onFail(new Error(`${options.label} exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}`));
      resolve();
    });
  });
  ready.catch(() => {});
  const pid = child.pid!;
  const status = (field: string): number | null => {
    try {
      const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
      return match ? Number(match[1]) / 1024 : null;
    } catch {
      return null;
    }
  };
  const ticks = 100; // USER_HZ on Linux
  return {
    pid,
    ready,
    peakRssMb: () => status('VmHWM'),
    cpuSeconds() {
      try {
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) / ticks;
      } catch {
        return null;
      }
    },
    syscalls() {
      try {
        const text = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
        const reads = Number(/^syscr:\s+(\d+)/m.exec(text)?.[1]);
        const writes = Number(/^syscw:\s+(\d+)/m.exec(text)?.[1]);
        return Number.isFinite(reads) && Number.isFinite(writes) ? { reads, writes } : null;
      } catch {
        return null;
      }
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(kill);
    },
    tail: () => lines.join('\n'),
  };
}

export async function stopAll(children: readonly Child[]): Promise<void> {
  await Promise.all(children.map((c) => c.stop()));
}

/**
 * The relay exactly as `npm run relay` runs it: bundled by the prerelay script, started with the
 * node flags of the relay script (package.json), so the figures are the production piece's.
 */
export function relayCommand(): { script: string; nodeArgs: string[]; text: string } {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const text = pkg.scripts.relay ?? '';
  const [node, ...args] = text.trim().split(/\s+/);
  const script = args.pop();
  if (node !== 'node' || !script) throw new Error(`the bench expects "relay": "node [flags] <bundle>" in package.json, found "${text}"`);
  if (!relayBuilt) {
    execFileSync('npm', ['run', '--silent', 'prerelay'], { cwd: ROOT, stdio: 'inherit' });
    relayBuilt = true;
  }
  return { script: path.join(ROOT, script), nodeArgs: args, text };
}
let relayBuilt = false;

/** The peer's worker bundled the same way (no flags: graphile-worker's defaults), so neither side pays for tsx. */
export function peerScript(): string {
  const outfile = path.join(ROOT, 'dist/bench-peer.mjs');
  if (!peerBuilt) {
    buildSync({
      entryPoints: [path.join(ROOT, 'bench/peer/worker.ts')],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      packages: 'external',
      keepNames: true,
      logLevel: 'warning',
      outfile,
    });
    peerBuilt = true;
  }
  return outfile;
}
let peerBuilt = false;
