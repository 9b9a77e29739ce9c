/**
 * Language identification with franc (character trigram profiles, ISO 639-3 codes).
 *
 * franc reads at most the first 2,048 characters of a text. Below LANGUAGE_MIN_CHARS characters its
 * guesses are unreliable and it answers 'und' (undetermined); a document that comes out 'und' never
 * passes a language filter, since "keep only English" must not keep text of unknown language.
 */
import { franc } from 'franc';

/** Texts shorter than this (in characters, after normalisation) are 'und'. */
export const LANGUAGE_MIN_CHARS = 50;

/** The code franc uses for "cannot tell". */
export const UNDETERMINED_LANGUAGE = 'und';

/** The ISO 639-3 code of the text's most likely language, or 'und'. */
export function detectLanguage(text: string): string {
  return franc(text, { minLength: LANGUAGE_MIN_CHARS });
}

/**
 * Parses a `--lang` list ("eng,fra") into ISO 639-3 codes; the error names the flag and a bad code
 * (a two-letter ISO 639-1 code such as 'en' is the usual mistake).
 */
export function parseLanguageList(value: string, flag = '--lang'): string[] {
  const codes = value
    .split(',')
    .map((code) => code.trim().toLowerCase())
    .filter((code) => code.length > 0);
  if (codes.length === 0) throw new Error(`${flag} expects ISO 639-3 codes such as 'eng' or 'eng,fra', got '${value}'`);
  for (const code of codes) {
    if (!/^[a-z]{3}$/.test(code) || code === UNDETERMINED_LANGUAGE) {
      throw new Error(`${flag} expects three-letter ISO 639-3 codes such as 'eng', 'fra', 'deu'; got '${code}'`);
    }
  }
  return codes;
}
