/**
 * The worker-thread side of `EncoderPool` (parallel.ts): builds the tokenizer once from what the
 * main thread sent (a tiktoken encoding's name, a file path, or the tokenizer's JSON) and says
 * `ready` (or why it could not), then encodes each batch of documents it is sent, replying with
 * one Int32Array per document (their buffers transferred, not copied). It lives as long as its
 * pool, so the tokenizer's piece cache stays warm from one call to the next.
 *
 * Only does anything when started by parallel.ts (its workerData says so): importing it
 * elsewhere has no effect.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer, tokenizerFromJSON } from './load.js';
import type { EncodeReply, EncodeRequest, EncodeWorkerData } from './parallel.js';
import type { Tokenizer } from './tokenizer.js';

const ENCODE_WORKER_KIND = 'tensorlm-encode-worker';

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s*[\r\n]+\s*/g, ' ');
}

function main(port: NonNullable<typeof parentPort>, data: EncodeWorkerData): void {
  let tokenizer: Tokenizer | null = null;
  let failure: string | null = null;
  try {
    const spec = data.spec;
    tokenizer = 'json' in spec ? tokenizerFromJSON(spec.json) : loadTokenizer('name' in spec ? spec.name : spec.path);
  } catch (error) {
    failure = `could not build the tokenizer: ${message(error)}`;
  }
  port.postMessage({ type: 'ready', failure } satisfies EncodeReply);
  port.on('message', (request: EncodeRequest) => {
    if (failure !== null || tokenizer === null) {
      port.postMessage({ type: 'error', seq: request.seq, index: -1, message: failure ?? 'no tokenizer' } satisfies EncodeReply);
      return;
    }
    const out: Int32Array[] = [];
    for (let i = 0; i < request.texts.length; i++) {
      try {
        out.push(tokenizer.encodeToInt32Array(request.texts[i], { allowSpecial: data.allowSpecial }));
      } catch (error) {
        port.postMessage({ type: 'error', seq: request.seq, index: i, message: message(error) } satisfies EncodeReply);
        return;
      }
    }
    // Each array's buffer moves to the main thread; an array that shares its buffer with another is never produced here.
    const transfer = out.filter((a) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength).map((a) => a.buffer as ArrayBuffer);
    port.postMessage({ type: 'done', seq: request.seq, ids: out } satisfies EncodeReply, [...new Set(transfer)]);
  });
}

const data = workerData as Partial<EncodeWorkerData> | null | undefined;
if (parentPort !== null && data !== null && typeof data === 'object' && data.kind === ENCODE_WORKER_KIND) main(parentPort, data as EncodeWorkerData);
