/*
 * `node --import tsx bench/drain-child.ts URL CLIENTS`: CLIENTS concurrent GETs of URL from this
 * small process, printing {"seconds", "bytes"} as JSON. The bench process holds every generated
 * image in memory, and its collector's pauses would otherwise be measured as server throughput.
 */
import { closeDrainAgent, drain } from './drain.js';

const [url, clients] = [process.argv[2] ?? '', Number(process.argv[3] ?? 1)];
const started = performance.now();
const results = await Promise.all(Array.from({ length: clients }, () => drain(url)));
const seconds = (performance.now() - started) / 1000;
closeDrainAgent();
process.stdout.write(`${JSON.stringify({ seconds, bytes: results.reduce((sum, r) => sum + r.bytes, 0) })}\n`);
