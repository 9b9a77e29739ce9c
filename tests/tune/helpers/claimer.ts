/**
 * A separate process that claims and finishes trials of a study as fast as it can, for the
 * storage concurrency test. Usage: claimer.ts <storage> <study> <startAtEpochMs>; prints the
 * trial numbers it claimed as a JSON array.
 */
import { openStorage } from '../../../src/tune/storage/index.js';

const [spec, studyName, startAt, holdMs] = process.argv.slice(2);
const storage = openStorage(spec);
const study = await storage.loadStudy(studyName);
if (!study) throw new Error(`no study ${studyName}`);
const identity = { id: `claimer-${process.pid}`, host: 'claimer-test', pid: process.pid };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Start together, so the claims really contend.
await sleep(Math.max(0, Number(startAt) - Date.now()));
const claimed: number[] = [];
for (;;) {
  const result = await storage.claimTrial(study.id, identity, (_history, number) => ({ x: number }), { staleAfterMs: 1e9 });
  if (result.kind === 'done') break;
  if (result.kind === 'wait') {
    await sleep(2);
    continue;
  }
  claimed.push(result.trial.number);
  // "Work" on the trial, so the other processes get their turns at the lock.
  await sleep(Number(holdMs));
  if (result.trial.params.x !== result.trial.number) throw new Error(`trial ${result.trial.number} has params ${JSON.stringify(result.trial.params)}`);
  if (!(await storage.finishTrial(result.trial.id, identity.id, { state: 'complete', value: result.trial.number }))) throw new Error(`could not finish ${result.trial.number}`);
}
await storage.close();
console.log(JSON.stringify(claimed));
