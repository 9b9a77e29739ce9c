/**
 * Built-in multiple-choice tasks made from held-out Shakespeare: text a model trained on
 * tiny-shakespeare by `tensorlm train` (the default run) has not trained on.
 *
 * Which text is held out: the default run splits its token stream at floor(0.9 × tokens) (the
 * TokenDataset's trainFraction) and trains only on windows before that point. Its tokenizer is
 * `char`, one token per character, and tiny-shakespeare is ASCII, so the token split is the
 * character split at floor(0.9 × characters) = 1,003,854. The tasks take only text after that
 * character (`heldOutStart`), from the first speech (or line) that begins after it. For another
 * tokenizer, give the character where its validation tokens begin (`start`, e.g. the length of
 * decode(train tokens)): when that is later than the 90% character, the text between was trained on.
 * Contexts that also occur verbatim in the training part (a repeated passage) are skipped.
 *
 * The held-out text is the end of The Taming of the Shrew and The Tempest: 939 speeches by 39
 * speakers. Each example has 4 choices, the answer at a seeded random place; the same text, seed
 * and count give the same examples, and a smaller count gives a prefix of a larger one.
 *
 * - `shakespeare-speaker`: who speaks next. The context is the previous speeches, whole, as many
 *   as fit in SPEAKER_CONTEXT_CHARS and at least two (so that the model sees earlier speakers' tags
 *   inside a 128-token window), ending with the blank line that closes the previous speech; the
 *   choices are `NAME:\n` for the real speaker and three speakers of other scenes (none of them
 *   speaks within SECTION_SPEECHES speeches of the asked one). What a model can learn from: who is
 *   on stage (dialogue alternates, so the speaker two speeches back is likely), who is addressed,
 *   and which names belong to this play. The tag follows the blank line exactly as in the
 *   training text. (Distractors from the same scene made a task no small model beat chance on.)
 * - `shakespeare-continuation`: which line comes next. The context is up to
 *   CONTINUATION_CONTEXT_CHARS characters of whole lines ending at a line break; the choices are
 *   the real next line and three lines drawn from elsewhere in the held-out text, of about the same
 *   length (within 20% or 3 characters), each followed by `\n`. Only lines of speech (not speaker
 *   tags or blank lines) are asked for or drawn.
 */
import { Generator } from '../tensor/random.js';
import type { MultipleChoiceExample } from './multiple-choice.js';

export const SHAKESPEARE_TASK_NAMES = ['shakespeare-speaker', 'shakespeare-continuation'] as const;
export type ShakespeareTaskName = (typeof SHAKESPEARE_TASK_NAMES)[number];

/** The dataset the tasks are built from (data/resolve.ts). */
export const SHAKESPEARE_DATASET = 'tinyshakespeare';
/** The default run's trainFraction (TokenDataset's default). */
export const DEFAULT_TRAIN_FRACTION = 0.9;
/** Choices per example. */
export const SHAKESPEARE_CHOICES = 4;
/**
 * Most characters of dialogue before the speech whose speaker is asked: with its tag, it fits the
 * tiny preset's 128-token context, so the model sees the earlier speakers' tags.
 */
export const SPEAKER_CONTEXT_CHARS = 110;
/** Most characters of text before the line that is asked for. */
export const CONTINUATION_CONTEXT_CHARS = 200;
/** Distractor speakers come from this many speeches on either side of the asked one. */
export const SECTION_SPEECHES = 40;

/** A speaker tag as the plays write it: `PETRUCHIO:`, `First Servant:`, `KING RICHARD III:`. */
const SPEAKER_TAG = /^[A-Za-z][A-Za-z' .,-]*:$/;

export function isShakespeareTaskName(name: string): name is ShakespeareTaskName {
  return (SHAKESPEARE_TASK_NAMES as readonly string[]).includes(name);
}

export interface ShakespeareTaskOptions {
  /** Examples wanted; fewer when the held-out text has fewer (default 500). */
  count?: number;
  seed?: number;
  /** The first held-out character (default heldOutStart(text)). */
  start?: number;
}

/** The first held-out character of `text` for a run with this trainFraction: floor(fraction × length). */
export function heldOutStart(text: string, trainFraction = DEFAULT_TRAIN_FRACTION): number {
  if (!(trainFraction > 0 && trainFraction < 1)) throw new RangeError(`heldOutStart: trainFraction must be in (0, 1), got ${trainFraction}`);
  return Math.floor(trainFraction * text.length);
}

/** One speech of the held-out text: its speaker, its first line and where its tag begins. */
interface Speech {
  name: string;
  firstLine: string;
  /** Offset of the tag line in the whole text. */
  at: number;
}

/** The speeches that begin after `start`: blocks separated by a blank line, each opening with a speaker tag. */
function speechesAfter(text: string, start: number): Speech[] {
  const speeches: Speech[] = [];
  // A speech begins after a blank line; the first one after `start` is the first whole speech.
  let at = text.indexOf('\n\n', start);
  while (at >= 0) {
    const begin = at + 2;
    const next = text.indexOf('\n\n', begin);
    const block = text.slice(begin, next < 0 ? text.length : next);
    const lines = block.split('\n');
    if (lines.length >= 2 && SPEAKER_TAG.test(lines[0]) && lines[1].trim() !== '') speeches.push({ name: lines[0].slice(0, -1), firstLine: lines[1], at: begin });
    at = next;
  }
  return speeches;
}

/** Where a context of at most `chars` characters ending at `end` begins: a line start, not before `floor`. */
function contextStart(text: string, end: number, chars: number, floor: number): number {
  const earliest = Math.max(floor, end - chars);
  // The first line start at or after `earliest` (the character after a newline).
  const from = earliest === 0 || text[earliest - 1] === '\n' ? earliest : text.indexOf('\n', earliest) + 1;
  return from > 0 && from < end ? from : end;
}

function shuffled<T>(items: readonly T[], g: Generator): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = g.randint(0, i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** `distractors` + the answer placed at a random index. */
function placeAnswer(answer: string, distractors: readonly string[], g: Generator): { choices: string[]; answer: number } {
  const index = g.randint(0, distractors.length + 1);
  const choices = distractors.slice();
  choices.splice(index, 0, answer);
  return { choices, answer: index };
}

function checkOptions(caller: string, text: string, options: ShakespeareTaskOptions): { count: number; seed: number; start: number } {
  const count = options.count ?? 500;
  const seed = options.seed ?? 0;
  const start = options.start ?? heldOutStart(text);
  if (!Number.isInteger(count) || count < 1) throw new Error(`${caller}: count must be a positive integer, got ${count}`);
  if (!Number.isFinite(seed)) throw new Error(`${caller}: seed must be a finite number, got ${seed}`);
  if (!Number.isInteger(start) || start < 1 || start >= text.length) throw new RangeError(`${caller}: start must be an integer in [1, ${text.length}), got ${start}`);
  return { count, seed, start };
}

/**
 * `shakespeare-speaker` examples from the text after `start` (see the file comment). Speeches are
 * asked in a seeded random order; those whose context occurs in the training text are skipped.
 */
export function shakespeareSpeakerTask(text: string, options: ShakespeareTaskOptions = {}): MultipleChoiceExample[] {
  const { count, seed, start } = checkOptions('shakespeareSpeakerTask', text, options);
  const speeches = speechesAfter(text, start);
  const names = [...new Set(speeches.map((s) => s.name))];
  if (names.length < SHAKESPEARE_CHOICES) throw new Error(`shakespeareSpeakerTask: the held-out text has ${names.length} speakers; ${SHAKESPEARE_CHOICES} are needed`);
  const trained = text.slice(0, start);
  const g = new Generator(seed);
  const examples: MultipleChoiceExample[] = [];
  // Speech 0 has no held-out dialogue before it.
  for (const i of shuffled(speeches.map((_, k) => k).slice(1), g)) {
    if (examples.length >= count) break;
    const speech = speeches[i];
    // The previous speeches whole, as many as fit, and at least two: the model must see who has been speaking.
    let from = i;
    while (from > 0 && speech.at - speeches[from - 1].at <= SPEAKER_CONTEXT_CHARS) from--;
    if (i - from < 2) continue;
    const context = text.slice(speeches[from].at, speech.at);
    if (trained.includes(context)) continue;
    // Distractors are speakers of other scenes: none of them speaks within SECTION_SPEECHES
    // speeches of the asked one, so the task asks whether the model tracks who is on stage (the
    // names in the dialogue so far), which a character-level model can learn; speakers of the same
    // scene would ask it to predict the turn order of three or four people on stage, which a small
    // model does not do better than chance (measured: 21% against 25% chance).
    const near = new Set<string>();
    for (let k = Math.max(0, i - SECTION_SPEECHES); k <= Math.min(speeches.length - 1, i + SECTION_SPEECHES); k++) near.add(speeches[k].name);
    let pool = names.filter((n) => !near.has(n));
    // A held-out text of one scene: any other speaker but the previous one (a speech never
    // follows one by the same speaker, so that choice would be wrong by the format alone).
    if (pool.length < SHAKESPEARE_CHOICES - 1) pool = names.filter((n) => n !== speech.name && n !== speeches[i - 1].name);
    const others = shuffled(pool, g).slice(0, SHAKESPEARE_CHOICES - 1);
    const tag = (name: string) => `${name}:\n`;
    const placed = placeAnswer(tag(speech.name), others.map(tag), g);
    examples.push({ id: `speech@${speech.at}`, context, ...placed });
  }
  return examples;
}

/** A line of speech in the held-out text. */
interface Line {
  text: string;
  at: number;
}

/** The lines that begin after `start` and are speech: not blank, not a speaker tag. */
function speechLinesAfter(text: string, start: number): Line[] {
  const lines: Line[] = [];
  let at = text.indexOf('\n', start) + 1;
  while (at > 0 && at < text.length) {
    const end = text.indexOf('\n', at);
    const line = text.slice(at, end < 0 ? text.length : end);
    // A last line without its newline is not whole: a choice ends with one.
    if (end >= 0 && line.trim() !== '' && !SPEAKER_TAG.test(line)) lines.push({ text: line, at });
    at = end + 1;
  }
  return lines;
}

/** Whether two line lengths are "about the same" for distractors: within 20% or 3 characters. */
function similarLength(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(3, 0.2 * a);
}

/**
 * `shakespeare-continuation` examples from the text after `start` (see the file comment). Lines
 * are asked in a seeded random order; those whose context occurs in the training text, or that
 * lack three distinct distractors of similar length, are skipped.
 */
export function shakespeareContinuationTask(text: string, options: ShakespeareTaskOptions = {}): MultipleChoiceExample[] {
  const { count, seed, start } = checkOptions('shakespeareContinuationTask', text, options);
  const lines = speechLinesAfter(text, start);
  if (lines.length < 2) throw new Error('shakespeareContinuationTask: the held-out text has fewer than 2 lines of speech');
  const floor = text.indexOf('\n', start) + 1;
  const trained = text.slice(0, start);
  const g = new Generator(seed);
  const examples: MultipleChoiceExample[] = [];
  for (const i of shuffled(lines.map((_, k) => k), g)) {
    if (examples.length >= count) break;
    const line = lines[i];
    const context = text.slice(contextStart(text, line.at, CONTINUATION_CONTEXT_CHARS, floor), line.at);
    if (context.length === 0 || trained.includes(context)) continue;
    const pool = [...new Set(lines.filter((l) => l.text !== line.text && similarLength(line.text.length, l.text.length)).map((l) => l.text))];
    if (pool.length < SHAKESPEARE_CHOICES - 1) continue;
    const others = shuffled(pool, g).slice(0, SHAKESPEARE_CHOICES - 1);
    const placed = placeAnswer(`${line.text}\n`, others.map((t) => `${t}\n`), g);
    examples.push({ id: `line@${line.at}`, context, ...placed });
  }
  return examples;
}

/** A built-in Shakespeare task by name. */
export function shakespeareTask(name: ShakespeareTaskName, text: string, options: ShakespeareTaskOptions = {}): MultipleChoiceExample[] {
  return name === 'shakespeare-speaker' ? shakespeareSpeakerTask(text, options) : shakespeareContinuationTask(text, options);
}
