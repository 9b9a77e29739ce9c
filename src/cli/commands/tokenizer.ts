import type { Command } from 'commander';

/** `tensorlm tokenizer train|encode|decode` — filled in by the tokenizer work. */
export function registerTokenizerCommands(program: Command): void {
  void program;
}
