#!/usr/bin/env -S node --single-threaded-gc
/**
 * The `tensorlm` command line: a thin layer over the library. Each subcommand lives in
 * src/cli/commands/ and only parses flags, calls library functions and prints.
 */
import { Command } from 'commander';
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';
import { registerTokenizerCommands } from './commands/tokenizer.js';
import { registerParamsCommand } from './commands/params.js';
import { registerTrainCommands } from './commands/train.js';
import { registerScalingCommands } from './commands/scaling.js';
import { registerTuneCommands } from './commands/tune.js';
import { registerMupCommands } from './commands/mup.js';
import { registerDashboardCommand } from './commands/dashboard.js';
import { registerInteropCommands } from './commands/interop.js';
import { registerPipelineCommand } from './commands/pipeline.js';
import { registerDataCommands } from './commands/data.js';
import { registerReportCommand } from './commands/report.js';
import { registerChatCommand, registerMergeCommand, registerPosttrainCommands, registerRlCommand } from './commands/posttrain.js';

function buildProgram(): Command {
  const program = new Command();
  program
    .name('tensorlm')
    .description('Tensors, autograd and small language models in TypeScript')
    .version('0.1.0')
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });
  registerTokenizerCommands(program);
  registerParamsCommand(program);
  registerTrainCommands(program);
  registerPosttrainCommands(program);
  registerRlCommand(program);
  registerMergeCommand(program);
  registerChatCommand(program);
  registerPipelineCommand(program);
  registerDataCommands(program);
  registerReportCommand(program);
  registerInteropCommands(program);
  registerScalingCommands(program);
  registerTuneCommands(program);
  registerMupCommands(program);
  registerDashboardCommand(program);
  return program;
}

// The commands import library modules directly, not src/index.ts, so the CLI names Node's backends itself.
setBackendInstaller(installNodeBackends);

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    // One clear line, no stack trace, for anything the user can fix.
    console.error(`tensorlm: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
