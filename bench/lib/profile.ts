// Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function and per source area.
import fs from 'node:fs';
import path from 'node:path';

type Node = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
};
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export type ProfileSummary = { totalMs: number; top: { frame: string; selfMs: number; pct: number }[]; areas: { area: string; selfMs: number; pct: number }[] };

function areaOf(url: string): string {
  if (!url) return '(native/idle/gc)';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = clean.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (clean.startsWith('node:')) return clean;
  const root = clean.indexOf('/main/');
  return root >= 0 ? clean.slice(root + '/main/'.length).split('/').slice(0, 2).join('/') : path.basename(clean);
}

export function summarizeProfile(file: string, topN = 20): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const frames = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    total += us;
    const file = url ? url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '') : '';
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    frames.set(key, (frames.get(key) ?? 0) + us);
    const area = areaOf(url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([k, us]) => ({ k, selfMs: Math.round(us / 1000), pct: Math.round((1000 * us) / total) / 10 }));
  return {
    totalMs: Math.round(total / 1000),
    top: rank(frames).map(({ k, selfMs, pct }) => ({ frame: k, selfMs, pct })),
    areas: rank(areas).map(({ k, selfMs, pct }) => ({ area: k, selfMs, pct })),
  };
}

export function formatProfile(label: string, s: ProfileSummary): string {
  const lines = [`${label}: ${s.totalMs} ms of non-idle CPU samples`, '  by area:'];
  for (const a of s.areas.slice(0, 12)) lines.push(`    ${String(a.pct).padStart(5)} %  ${a.area}`);
  lines.push('  top self-time frames:');
  for (const f of s.top) lines.push(`    ${String(f.pct).padStart(5)} %  ${f.frame}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  for (const file of process.argv.slice(2)) console.log(formatProfile(file, summarizeProfile(file, 30)));
}
