// Prints bench/results.json (or the file given) as Markdown: the table and each figure's
// conditions, for docs/performance.md.  npx tsx bench/report.ts [results.json]
import fs from 'node:fs';
import path from 'node:path';
import { resultsTable, type Results } from './bench';
import { ROOT } from './lib/procs';

const file = process.argv[2] ?? path.join(ROOT, 'bench/results.json');
const results = JSON.parse(fs.readFileSync(file, 'utf8')) as Results;
const lines = [resultsTable(results), '', 'Conditions of each figure:', ''];
for (const [key, figure] of Object.entries(results)) lines.push(`- \`${key}\`: ${figure.conditions}`);
process.stdout.write(`${lines.join('\n')}\n`);
