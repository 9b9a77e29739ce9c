/** Normalisation, HTML to text and language identification. */
import { describe, expect, it } from 'vitest';
import { htmlToPlainText } from '../../../src/data/prepare/html.js';
import { detectLanguage, parseLanguageList } from '../../../src/data/prepare/language.js';
import { normalizeText } from '../../../src/data/prepare/normalize.js';
import { DocumentCleaner } from '../../../src/data/prepare/prepare.js';
import { QUALITY_RULE_NAMES, defaultQualityRules, setRulesEnabled } from '../../../src/data/prepare/filters.js';

describe('normalizeText', () => {
  it.each([
    ['NFC', 'cafe\u0301', 'café'],
    ['CRLF and CR', 'a\r\nb\rc', 'a\nb\nc'],
    ['control characters, keeping tabs', 'a\u0000b\u0007c\td\u001b\u007f\u0085', 'abc\td'],
    ['Unicode spaces', 'a\u00a0b\u2009c\u3000d', 'a b c d'],
    ['trailing whitespace', 'a  \nb\t\nc', 'a\nb\nc'],
    ['runs of blank lines', 'a\n\n\n\n\nb\n \n \nc', 'a\n\nb\n\nc'],
    ['leading blank lines and trailing space, first-line indent kept', '\n \n  indented\nx\n\n  ', '  indented\nx'],
    ['a leading byte-order mark', '\ufeffhello', 'hello'],
  ])('%s', (_name, input, expected) => {
    expect(normalizeText(input)).toBe(expected);
  });

  it('keeps Unicode spaces when asked', () => {
    expect(normalizeText('a\u00a0b', { unicodeSpaces: false })).toBe('a\u00a0b');
  });
});

describe('htmlToPlainText', () => {
  it('keeps visible text: no scripts, styles, URLs or images; no hard wrapping', () => {
    const long = 'word '.repeat(40).trim();
    const html = `<html><head><title>T</title><style>p { color: red }</style><script>var x = 1;</script></head>
      <body><h1>Heading</h1><p>See <a href="https://example.com/page">this page</a> <img src="x.png" alt="a picture">now.</p><p>${long}</p></body></html>`;
    const text = htmlToPlainText(html);
    expect(text).toContain('Heading');
    expect(text).toContain('See this page now.');
    expect(text).toContain(long);
    expect(text).not.toMatch(/example\.com|color|var x|picture|x\.png/);
  });
});

const ENGLISH = 'The committee met on Tuesday to discuss the new budget for the library, and after a long debate the members agreed to buy more books for the children.';
const FRENCH = "Le comité s'est réuni mardi pour discuter du nouveau budget de la bibliothèque, et après un long débat les membres ont accepté d'acheter plus de livres pour les enfants.";
const GERMAN = 'Der Ausschuss traf sich am Dienstag, um über den neuen Haushalt der Bibliothek zu beraten, und nach einer langen Debatte stimmten die Mitglieder zu, mehr Bücher für die Kinder zu kaufen.';

describe('language identification', () => {
  it('tells English, French and German apart; short text is undetermined', () => {
    expect(detectLanguage(ENGLISH)).toBe('eng');
    expect(detectLanguage(FRENCH)).toBe('fra');
    expect(detectLanguage(GERMAN)).toBe('deu');
    expect(detectLanguage('Hello there.')).toBe('und');
  });

  it('the filter keeps the listed languages only; undetermined never passes', () => {
    const cleaner = new DocumentCleaner({ languages: ['eng', 'fra'], rules: setRulesEnabled(defaultQualityRules(), QUALITY_RULE_NAMES, false), dedup: 'none' });
    const kept = [ENGLISH, FRENCH, GERMAN, 'Hello there.'].map((text) => cleaner.clean({ text, html: false }).kept);
    expect(kept).toEqual([true, true, false, false]);
    expect(cleaner.report.removed.language?.documents).toBe(2);
    expect(cleaner.report.languages).toEqual({ eng: 1, fra: 1, deu: 1, und: 1 });
  });

  it('parses --lang lists', () => {
    expect(parseLanguageList('eng, FRA')).toEqual(['eng', 'fra']);
    expect(() => parseLanguageList('en')).toThrow("--lang expects three-letter ISO 639-3 codes such as 'eng', 'fra', 'deu'; got 'en'");
    expect(() => parseLanguageList(',')).toThrow(/--lang expects/);
  });
});
