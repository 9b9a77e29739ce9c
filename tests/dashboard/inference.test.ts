/** streamGeneration's text assembly: byte-level tokens that split a UTF-8 character are held back. */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { streamGeneration, type LoadedModel } from '../../src/dashboard/inference.js';
import type { GenerateRequest } from '../../src/dashboard/requests.js';
import { SseStream } from '../../src/dashboard/sse.js';
import type { TransformerLM } from '../../src/models/transformer.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';

/** The parts of a ServerResponse an SseStream uses, recording what is written. */
class FakeResponse extends EventEmitter {
  chunks: string[] = [];
  writableLength = 0;
  writableEnded = false;
  writeHead(): this {
    return this;
  }
  flushHeaders(): void {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  end(): void {
    this.writableEnded = true;
    this.emit('close');
  }
  destroy(): void {
    this.emit('close');
  }
}

/** Token ids are bytes; decoding is UTF-8 with U+FFFD for incomplete sequences (as byte-level BPE does). */
const byteTokenizer = { decode: (ids: ArrayLike<number>) => new TextDecoder().decode(Uint8Array.from(ids)) } as unknown as Tokenizer;

function fakeModel(ids: number[]): TransformerLM {
  return {
    *generateStream() {
      for (const id of ids) yield Int32Array.of(id);
    },
  } as unknown as TransformerLM;
}

async function run(ids: number[]): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const res = new FakeResponse();
  const stream = new SseStream(res as unknown as ServerResponse);
  stream.open();
  const loaded: LoadedModel = { model: fakeModel(ids), tokenizer: byteTokenizer, checkpoint: 'best' };
  const request: GenerateRequest = { prompt: '', maxNewTokens: ids.length, temperature: 0, topK: null, topP: null, checkpoint: 'best', seed: 1 };
  await streamGeneration(loaded, [10], request, stream);
  expect(res.writableEnded).toBe(true);
  return res.chunks.map((c) => {
    const [eventLine, dataLine] = c.split('\n');
    return { event: eventLine.slice(7), data: JSON.parse(dataLine.slice(6)) as Record<string, unknown> };
  });
}

describe('streamGeneration', () => {
  it('holds back a partial UTF-8 character until the token that completes it', async () => {
    const euro = [...new TextEncoder().encode('€')]; // 3 bytes
    const events = await run([0x41, ...euro, 0x42, ...new TextEncoder().encode('é')]);
    const tokens = events.filter((e) => e.event === 'token').map((e) => e.data);
    expect(tokens.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(tokens.map((t) => t.text)).toEqual(['A', '', '', '€', 'B', '', 'é']);
    expect(events[events.length - 1]).toMatchObject({ event: 'done', data: { tokens: 7, checkpoint: 'best' } });
  });

  it('flushes an incomplete character at the end, and after 8 tokens of invalid bytes', async () => {
    const tail = await run([0x41, 0xe2, 0x82]);
    expect(tail.filter((e) => e.event === 'token').map((e) => e.data.text)).toEqual(['A', '', '\uFFFD']);
    const invalid = await run(Array.from({ length: 10 }, () => 0xff));
    const texts = invalid.filter((e) => e.event === 'token').map((e) => e.data.text as string);
    expect(texts.slice(0, 7)).toEqual(Array.from({ length: 7 }, () => ''));
    expect(texts.join('')).toBe('\uFFFD'.repeat(10));
  });

  it('several samples: each token event names its row, rows stop on their own, done counts every row', async () => {
    const res = new FakeResponse();
    const stream = new SseStream(res as unknown as ServerResponse);
    stream.open();
    // Row 0 ends its reply (stop token 7) at its 2nd token; row 1 sends a split '€' and runs to the end.
    const euro = [...new TextEncoder().encode('€')];
    const scripts = [[0x41, 7, 0x42, 0x43], [0x61, ...euro]];
    const model = {
      *generateStream(ids: { shape: number[] }) {
        expect(ids.shape[0]).toBe(2);
        for (let i = 0; i < 4; i++) yield Int32Array.from(scripts, (s) => s[i]);
      },
    } as unknown as TransformerLM;
    const request: GenerateRequest = { prompt: '', maxNewTokens: 4, temperature: 0, topK: null, topP: null, checkpoint: 'best', seed: 1, samples: 2 };
    await streamGeneration({ model, tokenizer: byteTokenizer, checkpoint: 'best' }, [1], request, stream, { stopTokens: [7] });
    const events = res.chunks.map((c) => ({ event: c.split('\n')[0].slice(7), data: JSON.parse(c.split('\n')[1].slice(6)) as Record<string, unknown> }));
    expect(events.filter((e) => e.event === 'token').map((e) => e.data)).toEqual([
      { text: 'A', index: 0, row: 0 },
      { text: 'a', index: 0, row: 1 },
      { text: '', index: 1, row: 1 },
      { text: '', index: 2, row: 1 },
      { text: '€', index: 3, row: 1 },
    ]);
    expect(events[events.length - 1]).toMatchObject({ event: 'done', data: { tokens: 5, samples: 2 } });
  });

  it('reports a model failure midway as an error event and ends the stream', async () => {
    const res = new FakeResponse();
    const stream = new SseStream(res as unknown as ServerResponse);
    const model = {
      *generateStream() {
        yield Int32Array.of(0x41);
        throw new Error('boom');
      },
    } as unknown as TransformerLM;
    const request: GenerateRequest = { prompt: '', maxNewTokens: 5, temperature: 0, topK: null, topP: null, checkpoint: 'best', seed: null };
    await streamGeneration({ model, tokenizer: byteTokenizer, checkpoint: 'latest' }, [1], request, stream);
    expect(res.chunks.map((c) => c.split('\n')[0])).toEqual(['event: token', 'event: error']);
    expect(res.chunks[1]).toContain('generation failed: boom');
    expect(res.writableEnded).toBe(true);
  });
});
