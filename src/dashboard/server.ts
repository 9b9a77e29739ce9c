/**
 * The server behind `tensorlm dashboard`: the dashboard and playground pages (vite builds in
 * dist-web/), a JSON API over the run directories it was given, live metrics as server-sent
 * events, and streamed generation / attention maps from a run's checkpoint. docs/dashboard.md
 * lists the endpoints and the safety rules.
 *
 * Safety, in short: only the asset folders and the fixed files of discovered runs are readable;
 * paths are validated segment by segment and resolved through realpath (symlinks cannot lead out);
 * run names are looked up, never joined to paths; bodies are JSON only (which a cross-site form
 * cannot send without a CORS preflight, and none is answered) and at most 64 KiB; when bound to a
 * loopback address only requests addressed to a loopback name are answered (DNS rebinding).
 *
 * Resources are bounded (DashboardLimits): header / request timeouts close slow clients, event
 * streams are written with backpressure under per-stream and total buffer caps, JSON read from a
 * run is depth-checked, checkpoints are size-checked from their header before loading, and error
 * messages are clipped.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DEFAULT_HOST, DEFAULT_PORT } from './defaults.js';
import { attentionResponse, chatContext, DEFAULT_MAX_MODEL_PARAMETERS, generationContext, ModelCache, streamGeneration } from './inference.js';
import { clipMessage } from './json.js';
import { metricsJsonChunks } from './lines.js';
import { HttpError, parseAttentionRequest, parseChatRequest, parseGenerateRequest } from './requests.js';
import { isChatRun, isRunFileName, readRunConfig, RUN_FILES, RunRegistry, runFile, runSummary, type RunEntry } from './runs.js';
import { DEFAULT_STREAM_BUFFER_BYTES, DEFAULT_STREAM_STALL_MS, DEFAULT_TOTAL_STREAM_BUFFER_BYTES, MIN_STREAM_BUFFER_BYTES, RunFollower, SseBudget, SseStream } from './sse.js';
import { resolveStatic } from './static.js';

export { DEFAULT_HOST, DEFAULT_PORT };

export interface DashboardOptions {
  /** Run directories to show (each holds config.json or metrics.jsonl). */
  run?: string[];
  /** A directory searched for runs (to depth 3), re-scanned as runs appear. */
  runs?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 6006; 0 picks a free port. */
  port?: number;
  /** The vite builds (dashboard/ and playground/); default <package root>/dist-web. */
  assetsDir?: string;
  /** Resource bounds; each one left out keeps its default (DEFAULT_LIMITS). */
  limits?: Partial<DashboardLimits>;
}

/** The server's resource bounds (docs/dashboard.md, Bounded resources). */
export interface DashboardLimits {
  /** A client must send its request headers within this (ms), else its socket is closed. */
  headersTimeoutMs: number;
  /** A client must send its whole request (headers and body) within this (ms); responses, event streams included, are not limited. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (ms). */
  keepAliveTimeoutMs: number;
  /** Open event streams (metrics, generations, chats) at most. */
  maxStreams: number;
  /** An event stream is dropped once this many bytes wait for its client (at least 128 KiB). */
  streamBufferBytes: number;
  /** All event streams together may buffer this many bytes; a write beyond drops its stream. */
  totalStreamBufferBytes: number;
  /** An event stream whose buffered bytes do not drain for this long (ms) is dropped. */
  streamStallMs: number;
  /** The largest model (parameters) a checkpoint may declare for generation and attention. */
  maxModelParameters: number;
}

/** Slow-header sockets (a client sending its headers a byte at a time) are closed after this. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** The whole request, a body of at most 64 KiB included. */
export const REQUEST_TIMEOUT_MS = 30_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export const DEFAULT_LIMITS: Readonly<DashboardLimits> = Object.freeze({
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
  keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
  maxStreams: 256,
  streamBufferBytes: DEFAULT_STREAM_BUFFER_BYTES,
  totalStreamBufferBytes: DEFAULT_TOTAL_STREAM_BUFFER_BYTES,
  streamStallMs: DEFAULT_STREAM_STALL_MS,
  maxModelParameters: DEFAULT_MAX_MODEL_PARAMETERS,
});

function resolveLimits(given: Partial<DashboardLimits> | undefined): DashboardLimits {
  const limits: DashboardLimits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(given ?? {}) as [keyof DashboardLimits, unknown][]) {
    if (!(key in DEFAULT_LIMITS)) throw new Error(`limits: unknown limit '${String(key)}' (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new RangeError(`limits.${key} must be a positive integer, got ${String(value)}`);
    limits[key] = value;
  }
  for (const key of ['streamBufferBytes', 'totalStreamBufferBytes'] as const) {
    if (limits[key] < MIN_STREAM_BUFFER_BYTES) throw new RangeError(`limits.${key} must be at least ${MIN_STREAM_BUFFER_BYTES} (one piece of a snapshot), got ${limits[key]}`);
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) throw new RangeError(`limits.headersTimeoutMs (${limits.headersTimeoutMs}) must be at most limits.requestTimeoutMs (${limits.requestTimeoutMs})`);
  return limits;
}

export interface Dashboard {
  /** e.g. http://127.0.0.1:6006/ */
  url: string;
  /** Ends open event streams and generations, stops listening and frees the port. */
  close(): Promise<void>;
}

const BODY_LIMIT_BYTES = 64 * 1024;
/** Generations run one token per event-loop turn; a few at once keep each one responsive. */
const MAX_GENERATIONS = 4;
const HEARTBEAT_MS = 15_000;

/** The folder holding package.json above this file: src/dashboard under tsx, dist/dashboard when built. */
function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** The host name of a Host header ('[::1]:80' → '::1', 'localhost:6006' → 'localhost'). */
function hostName(header: string): string {
  if (header.startsWith('[')) return header.slice(1, header.indexOf(']') === -1 ? undefined : header.indexOf(']'));
  return header.split(':')[0];
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startDashboard(options: DashboardOptions = {}): Promise<Dashboard> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (typeof host !== 'string' || host === '') throw new Error(`host must be a host name or address, got '${String(host)}'`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be an integer in 0..65535, got ${String(port)}`);
  const registry = new RunRegistry({ run: options.run, runs: options.run === undefined && options.runs === undefined ? 'runs' : options.runs });
  const assetsDir = options.assetsDir ?? join(packageRoot(), 'dist-web');
  const limits = resolveLimits(options.limits);
  const models = new ModelCache(4, limits.maxModelParameters);
  const streams = new Set<SseStream>();
  const budget = new SseBudget(limits.totalStreamBufferBytes);
  let generations = 0;
  let closing = false;

  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Node closes a socket whose request headers (or whole request) are not in by these deadlines,
    // checked every connectionsCheckingInterval; responses (event streams) are not limited.
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 10))),
    },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // No idle-socket timeout: an event stream of a finished run is quiet between heartbeats.
    connectionTimeout: 0,
    // close() ends our own streams first; whatever is left is cut rather than waited for.
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 1000 },
    // Errors the router raises before any route runs, answered in the API's { error } shape.
    frameworkErrors: (error, request, reply) => {
      const target = (request.raw.url ?? '').slice(0, 200);
      const [status, message] =
        error.code === 'FST_ERR_BAD_URL' ? [400, `malformed URL (bad percent-encoding): ${target}`] : error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? [414, 'URL path segment too long'] : [400, 'bad request'];
      void (reply as FastifyReply).code(status).type('application/json; charset=utf-8').send({ error: message });
    },
  });
  // JSON is the only body accepted: text/plain is what a cross-site form could post without a preflight.
  app.removeContentTypeParser('text/plain');

  const loopbackOnly = isLoopback(host);
  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.host;
    if (loopbackOnly && header !== undefined && !isLoopback(hostName(header))) {
      return reply.code(403).send({ error: `Host '${header.slice(0, 100)}' refused: this server answers only requests to localhost / 127.0.0.1 (start it with --host to serve other names)` });
    }
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    return payload;
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    let status = 500;
    let message = 'internal server error';
    if (error instanceof HttpError) {
      status = error.status;
      message = error.message;
    } else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      message = `request body is larger than the limit of ${BODY_LIMIT_BYTES} bytes`;
    } else if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      message = `Content-Type must be application/json, got '${String(request.headers['content-type'] ?? 'none').slice(0, 100)}'`;
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      message = error.message;
    }
    if (status >= 500 && !(error instanceof HttpError)) console.error(`tensorlm dashboard: ${request.method} ${request.url.slice(0, 200)}: ${clipMessage(error.message)}`);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    void reply.code(status).type('application/json; charset=utf-8').send({ error: clipMessage(message) });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: `no such route: ${request.method} ${request.url.split('?')[0].slice(0, 200)}` });
  });

  const lookup = (name: string): RunEntry => {
    const run = registry.get(name);
    if (!run) throw new HttpError(404, `unknown run '${name.slice(0, 200)}' (GET /api/runs lists the runs)`);
    return run;
  };
  const requireJson = (request: FastifyRequest): void => {
    const type = request.headers['content-type'];
    if (type === undefined || !/^application\/json\s*(;|$)/i.test(type)) {
      throw new HttpError(415, `Content-Type must be application/json, got '${String(type ?? 'none').slice(0, 100)}'`);
    }
  };
  const noStore = (reply: FastifyReply) => reply.header('Cache-Control', 'no-store');
  /** Takes the response over for an event stream that close() can end. */
  const openStream = (reply: FastifyReply): SseStream => {
    if (closing) throw new HttpError(503, 'the server is shutting down');
    if (streams.size >= limits.maxStreams) throw new HttpError(429, `too many open event streams (at most ${limits.maxStreams})`);
    reply.hijack();
    const stream = new SseStream(reply.raw, { maxBufferedBytes: limits.streamBufferBytes, stallMs: limits.streamStallMs, budget });
    streams.add(stream);
    stream.onClose(() => streams.delete(stream));
    stream.open();
    return stream;
  };

  type NameParams = { Params: { name: string } };

  app.get('/api/runs', async (_request, reply) => {
    noStore(reply);
    return { runs: registry.rescan().map((run) => runSummary(run)) };
  });

  // The metrics are streamed from the file (with backpressure): a long run's log is never held whole.
  app.get<NameParams>('/api/runs/:name', async (request, reply) => {
    const run = lookup(request.params.name);
    const config = readRunConfig(run);
    const head = { name: run.name, config, hasBest: runFile(run, 'best.safetensors') !== null, hasLatest: runFile(run, 'latest.safetensors') !== null, chat: isChatRun(run) };
    const path = runFile(run, 'metrics.jsonl');
    async function* body(): AsyncGenerator<string> {
      yield `${JSON.stringify(head).slice(0, -1)},"metrics":[`;
      yield* metricsJsonChunks(path);
      yield ']}';
    }
    noStore(reply);
    reply.type('application/json; charset=utf-8');
    return reply.send(Readable.from(body()));
  });

  // No HEAD twin: a HEAD request would hold a stream open with nothing to send.
  app.get<NameParams>('/api/runs/:name/events', { exposeHeadRoute: false }, async (request, reply) => {
    const run = lookup(request.params.name);
    const stream = openStream(reply);
    const follower = new RunFollower(run, stream);
    const heartbeat = setInterval(() => stream.comment('heartbeat'), HEARTBEAT_MS);
    heartbeat.unref();
    stream.onClose(() => {
      follower.stop();
      clearInterval(heartbeat);
    });
    follower.start();
  });

  app.get<{ Params: { name: string; file: string } }>('/api/runs/:name/files/:file', async (request, reply) => {
    const run = lookup(request.params.name);
    const file = request.params.file;
    if (!isRunFileName(file)) throw new HttpError(404, `file '${file.slice(0, 100)}' is not served (only ${RUN_FILES.join(', ')})`);
    const path = runFile(run, file);
    if (path === null) throw new HttpError(404, `run '${run.name}' has no ${file} (or it leads outside the run directory)`);
    const size = statSync(path).size;
    noStore(reply);
    reply.header('Content-Length', size);
    reply.type(file.endsWith('.json') ? 'application/json; charset=utf-8' : file.endsWith('.jsonl') ? 'application/x-ndjson; charset=utf-8' : 'application/octet-stream');
    return reply.send(createReadStream(path));
  });

  /** At most MAX_GENERATIONS streamed generations (and chats) at once: a 429 beyond, before any work. */
  const checkGenerationSlot = () => {
    if (generations >= MAX_GENERATIONS) throw new HttpError(429, `${MAX_GENERATIONS} generations are already running; try again when one ends`);
  };
  const inGenerationSlot = async (stream: () => Promise<void>) => {
    generations++;
    try {
      await stream();
    } finally {
      generations--;
    }
  };

  app.post<NameParams>('/api/runs/:name/generate', async (request, reply) => {
    const run = lookup(request.params.name);
    requireJson(request);
    const body = parseGenerateRequest(request.body);
    checkGenerationSlot();
    const loaded = models.get(run, body.checkpoint);
    const context = generationContext(loaded.tokenizer, body.prompt);
    await inGenerationSlot(() => streamGeneration(loaded, context, body, openStream(reply)));
  });

  // Stateless: the client sends the whole conversation each turn and it is rendered afresh (no
  // per-client KV cache to expire or bound); the reply streams like a generation, up to <|assistant_end|>.
  app.post<NameParams>('/api/runs/:name/chat', async (request, reply) => {
    const run = lookup(request.params.name);
    requireJson(request);
    const body = parseChatRequest(request.body);
    checkGenerationSlot();
    const loaded = models.get(run, body.checkpoint);
    const chat = chatContext(loaded, run.name, body.messages, body.maxNewTokens);
    await inGenerationSlot(() =>
      streamGeneration(loaded, chat.ids, { ...body, maxNewTokens: chat.maxNewTokens }, openStream(reply), {
        stopTokens: [chat.assistantEnd],
        // 'stop': the model ended its turn; 'length': maxNewTokens (or the context) ran out first.
        done: (result) => ({ stopReason: result?.stopReason ?? 'length', dropped: chat.dropped }),
      }),
    );
  });

  app.post<NameParams>('/api/runs/:name/attention', async (request, reply) => {
    const run = lookup(request.params.name);
    requireJson(request);
    const body = parseAttentionRequest(request.body);
    noStore(reply);
    return attentionResponse(models.get(run, body.checkpoint), body.prompt);
  });

  // The pages: resolved from the raw URL (never the router's decoded one), see static.ts.
  const servePage = async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = request.raw.url ?? '/';
    if (/^\/api(\/|\?|$)/.test(raw)) throw new HttpError(404, `no such route: ${request.method} ${raw.split('?')[0].slice(0, 200)}`);
    const found = resolveStatic(assetsDir, raw);
    if (found.kind === 'redirect') return reply.redirect(found.location, 301);
    if (found.kind === 'error') {
      // The "not built" page is read by a person in a browser: plain text.
      if (found.status === 503) return reply.code(503).type('text/plain; charset=utf-8').send(found.message + '\n');
      throw new HttpError(found.status, found.message);
    }
    reply.header('Cache-Control', found.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    reply.header('Content-Length', found.size);
    return reply.type(found.contentType).send(createReadStream(found.path));
  };
  app.get('/', servePage);
  app.get('/*', servePage);

  try {
    await app.listen({ host, port });
  } catch (error) {
    await app.close().catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new Error(`port ${port} on ${host} is already in use; pass --port <n> (0 picks a free port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new Error(`host '${host}' is not an address of this machine`);
    throw error;
  }
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;

  let closed: Promise<void> | null = null;
  return {
    url: `http://${urlHost(host)}:${boundPort}/`,
    close(): Promise<void> {
      closed ??= (async () => {
        closing = true;
        for (const stream of [...streams]) stream.end();
        models.clear();
        await app.close();
      })();
      return closed;
    },
  };
}
