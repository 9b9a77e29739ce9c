/**
 * HTML → plain text with html-to-text: no hard wrapping (the line structure of paragraphs is the
 * document's, not a 80-column terminal's), links keep their text but not their URLs (URLs are
 * noise to a language model and inflate the symbol ratios), images are skipped, headings keep their
 * case. <script>, <style> and <head> contents are not text and html-to-text drops them.
 */
import { compile, type HtmlToTextOptions } from 'html-to-text';

const HTML_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'h3', options: { uppercase: false } },
    { selector: 'h4', options: { uppercase: false } },
    { selector: 'h5', options: { uppercase: false } },
    { selector: 'h6', options: { uppercase: false } },
    { selector: 'table', options: { uppercaseHeaderCells: false } },
  ],
};

// Compiled on first use, not at import: importing this module has no side effects.
let converter: ((html: string) => string) | undefined;

/** The visible text of an HTML document or fragment. */
export function htmlToPlainText(html: string): string {
  converter ??= compile(HTML_OPTIONS);
  return converter(html);
}
