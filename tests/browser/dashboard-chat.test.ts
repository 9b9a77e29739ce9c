/**
 * The dashboard's chat panel in Chromium, on a chat run made here (a tiny base, then 20 sft steps
 * on the `reverse` task) next to its non-chat base: the panel shows only for the chat run, a
 * message sent with Enter gets a reply streamed into the last bubble (greedy, so it equals the
 * library's generateText on the rendered conversation), the second turn sends the whole
 * conversation, and Reset clears it. Screenshot: test-artifacts/dashboard-chat.png.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage } from '../../src/chat/template.js';
import { startDashboard } from '../../src/dashboard/server.js';
import { generateText } from '../../src/models/generate.js';
import { loadRun } from '../../src/train/trainer.js';
import { baseRun, wordChatRun } from '../posttrain/helpers.js';
import { artifactPath, chromiumSkipReason, launchChromium } from './chromium.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Short replies and messages: two turns fit the model's 32-token context, so nothing is left out. */
const MAX_TOKENS = 4;

describe.skipIf(chromiumSkipReason !== null)('dashboard chat panel in Chromium', () => {
  let dir: string;
  let server: Awaited<ReturnType<typeof startDashboard>>;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  /** The greedy reply the library gives to `messages`. */
  const expected = (messages: ChatMessage[]): string => {
    const { model, tokenizer } = loadRun(join(dir, 'runs', 'chat'), 'best');
    const template = new ChatTemplate(tokenizer);
    return generateText(model, tokenizer, template.renderForGeneration(messages), { maxNewTokens: MAX_TOKENS, temperature: 0, stopTokens: [template.assistantEnd] }).text;
  };
  const assistant = (state: string) => `[data-testid="chat-message"][data-role="assistant"][data-state="${state}"]`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-dashboard-chat-'));
    const assetsDir = join(dir, 'dist-web');
    // Its own assets folder: other browser tests rebuild dist-web/ concurrently.
    const built = build({ configFile: join(REPO, 'web/dashboard/vite.config.ts'), logLevel: 'warn', mode: 'production', build: { outDir: join(assetsDir, 'dashboard'), emptyOutDir: true } });
    const runs = join(dir, 'runs');
    mkdirSync(runs);
    const base = await baseRun(runs);
    // Replies that repeat the word: longer than MAX_TOKENS, so the reply is cut there.
    await wordChatRun(base, runs, (w) => [w, `${w} ${w} ${w}`]);
    await built;
    server = await startDashboard({ runs, host: '127.0.0.1', port: 0, assetsDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the chat panel only for a chat model', async () => {
    await page.goto(server.url);
    await page.locator('[data-testid="run-item"]').first().waitFor();
    // The sft run was written last: it is focused.
    await expect.poll(() => page.textContent('[data-testid="focused-run"]')).toBe('chat');
    await page.locator('[data-testid="chat-panel"]').waitFor({ state: 'visible' });
    await page.locator('[data-testid="run-item"][data-run="base"] .run-name').click();
    await page.locator('[data-testid="chat-panel"]').waitFor({ state: 'hidden' });
    await page.locator('[data-testid="run-item"][data-run="chat"] .run-name').click();
    await page.locator('[data-testid="chat-panel"]').waitFor({ state: 'visible' });
    expect(await page.textContent('[data-testid="chat-run"]')).toBe('with chat');
  });

  it('streams the reply into the last bubble, sends the whole conversation each turn, and Reset clears it', async () => {
    await page.fill('[data-testid="chat-temperature"]', '0');
    await page.fill('[data-testid="chat-max-tokens"]', String(MAX_TOKENS));
    await page.fill('[data-testid="chat-input"]', 'cat');
    await page.press('[data-testid="chat-input"]', 'Enter');
    await page.waitForSelector(assistant('done'), { timeout: 20_000 });
    const first = expected([{ role: 'user', content: 'cat' }]);
    expect(first.trim()).not.toBe('');
    expect(await page.textContent('[data-testid="chat-message"][data-role="user"]')).toBe('cat');
    expect(await page.textContent('[data-testid="chat-reply-text"]')).toBe(first);
    // Token by token: one text node per token event.
    expect(await page.getAttribute(assistant('done'), 'data-tokens')).toBe(String(MAX_TOKENS));
    expect(await page.$eval('[data-testid="chat-reply-text"]', (el) => el.childNodes.length)).toBe(MAX_TOKENS);
    expect(await page.textContent('[data-testid="chat-status"]')).toMatch(/^4 tokens at [\d.]+ tokens\/s \(cut at max tokens\)$/);
    expect(await page.inputValue('[data-testid="chat-input"]')).toBe('');

    // The second turn: the reply is to the whole conversation.
    await page.fill('[data-testid="chat-input"]', 'dog');
    await page.press('[data-testid="chat-input"]', 'Enter');
    await expect.poll(() => page.locator(assistant('done')).count(), { timeout: 20_000 }).toBe(2);
    const second = expected([
      { role: 'user', content: 'cat' },
      { role: 'assistant', content: first },
      { role: 'user', content: 'dog' },
    ]);
    expect(await page.locator('[data-testid="chat-reply-text"]').nth(1).textContent()).toBe(second);
    expect(await page.textContent('[data-testid="chat-status"]')).not.toContain('no longer fit');
    expect(await page.locator('[data-testid="chat-message"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-role')))).toEqual(['user', 'assistant', 'user', 'assistant']);
    await page.locator('[data-testid="chat-panel"]').screenshot({ path: artifactPath('dashboard-chat.png') });

    await page.click('[data-testid="chat-reset"]');
    expect(await page.locator('[data-testid="chat-message"]').count()).toBe(0);
    expect(await page.textContent('[data-testid="chat-status"]')).toBe('');
    expect(await page.isDisabled('[data-testid="chat-send"]')).toBe(false);
    expect(await page.locator('[data-testid="error-banner"] .banner').allTextContents()).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
