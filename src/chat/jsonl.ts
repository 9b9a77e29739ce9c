/**
 * Chat data as JSON Lines, one example per line (the layout of Hugging Face chat and preference
 * datasets):
 *
 *   conversations: {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}
 *   preferences:   {"prompt": "…" | [messages…], "chosen": "…", "rejected": "…"}
 *
 * Blank lines are skipped and other fields ignored. Every bad line is an error
 * `file:LINE: what was expected`, so a dataset of thousands of lines can be fixed at once.
 */
import { readTextFile } from '../data/files.js';
import { conversationProblem, describeValue, type ChatMessage, type Conversation } from './template.js';

/** One preference example: a prompt and two assistant replies, the better one `chosen`. */
export interface PreferencePair {
  /** The conversation the replies answer; it ends with a user message. A string prompt is one user message. */
  prompt: ChatMessage[];
  chosen: string;
  rejected: string;
}

/** The parsed JSON objects of non-blank lines, with their line numbers. */
function* jsonLines(text: string, name: string): Generator<{ line: number; value: Record<string, unknown> }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (i === 0 && line.startsWith('\uFEFF')) line = line.slice(1); // files saved by some editors start with a BOM
    if (line.trim().length === 0) continue;
    const where = `${name}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line) as unknown;
    } catch (error) {
      const reason = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ');
      throw new Error(`${where}: expected one JSON object per line, got invalid JSON (${reason})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`${where}: expected a JSON object, got ${describeValue(value)}`);
    }
    yield { line: i + 1, value: value as Record<string, unknown> };
  }
}

/** Only role and content, so extra fields of the source (ids, names) do not travel on. */
function copyMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map(({ role, content }) => ({ role, content }));
}

/**
 * Conversations from JSONL text (`name` labels errors, e.g. the file name). Each must be a valid
 * training conversation: an optional leading system message, then user and assistant messages
 * alternating from user, ending with the assistant's reply, none empty.
 */
export function parseConversationsJsonl(text: string, name = '<conversations>'): Conversation[] {
  const out: Conversation[] = [];
  for (const { line, value } of jsonLines(text, name)) {
    const problem = conversationProblem(value.messages, 'assistant');
    if (problem !== null) throw new Error(`${name}:${line}: ${problem}`);
    out.push({ messages: copyMessages(value.messages as ChatMessage[]) });
  }
  if (out.length === 0) throw new Error(`${name}: expected at least one conversation, found only blank lines`);
  return out;
}

/**
 * Preference pairs from JSONL text. `prompt` is a string (one user message) or a messages array
 * ending with a user message; `chosen` and `rejected` are the two assistant replies, non-empty
 * and different.
 */
export function parsePreferencesJsonl(text: string, name = '<preferences>'): PreferencePair[] {
  const out: PreferencePair[] = [];
  for (const { line, value } of jsonLines(text, name)) {
    const where = `${name}:${line}`;
    let prompt: ChatMessage[];
    if (typeof value.prompt === 'string') {
      if (value.prompt.trim().length === 0) throw new Error(`${where}: expected non-empty "prompt"`);
      prompt = [{ role: 'user', content: value.prompt }];
    } else if (Array.isArray(value.prompt)) {
      const problem = conversationProblem(value.prompt, 'user', 'prompt');
      if (problem !== null) throw new Error(`${where}: ${problem}`);
      prompt = copyMessages(value.prompt as ChatMessage[]);
    } else {
      throw new Error(`${where}: expected "prompt" to be a string or an array of messages, got ${describeValue(value.prompt)}`);
    }
    for (const field of ['chosen', 'rejected'] as const) {
      const reply = value[field];
      if (typeof reply !== 'string' || reply.trim().length === 0) {
        const got = typeof reply === 'string' ? 'an empty string' : describeValue(reply);
        throw new Error(`${where}: expected "${field}" to be a non-empty string (an assistant reply), got ${got}`);
      }
    }
    const chosen = value.chosen as string;
    const rejected = value.rejected as string;
    if (chosen === rejected) throw new Error(`${where}: expected "chosen" and "rejected" to differ, got the same text twice`);
    out.push({ prompt, chosen, rejected });
  }
  if (out.length === 0) throw new Error(`${name}: expected at least one preference pair, found only blank lines`);
  return out;
}

/** Reads a conversations JSONL file (see `parseConversationsJsonl`). */
export function readConversations(path: string): Conversation[] {
  return parseConversationsJsonl(readTextFile(path, 'conversations file'), path);
}

/** Reads a preferences JSONL file (see `parsePreferencesJsonl`). */
export function readPreferences(path: string): PreferencePair[] {
  return parsePreferencesJsonl(readTextFile(path, 'preferences file'), path);
}
