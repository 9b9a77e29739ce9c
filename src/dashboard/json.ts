/**
 * Error messages sent to the dashboard's clients are clipped. Parsing the JSON a run holds
 * (config.json, metrics lines, checkpoint metadata) with a bounded nesting depth is io's
 * (`scanJson`, `parseJsonText` in src/io/json.ts), as for every other reader of those files.
 */

/** Error messages sent to clients are clipped to this many characters. */
export const MAX_ERROR_CHARS = 300;

/** `message` cut to `max` characters (an ellipsis marks the cut). */
export function clipMessage(message: string, max = MAX_ERROR_CHARS): string {
  return message.length > max ? `${message.slice(0, max - 1)}…` : message;
}
