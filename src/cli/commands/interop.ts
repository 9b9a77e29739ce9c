/** `tensorlm export` and `tensorlm import`: runs in and out of the Hugging Face ecosystem (src/interop). */
import { Option, type Command } from 'commander';
import { exportHf, importHf } from '../../interop/hf.js';

export function registerInteropCommands(program: Command): void {
  program
    .command('export')
    .description("a run's checkpoint as a Hugging Face model folder (LlamaForCausalLM or GPT2LMHeadModel: config.json, model.safetensors, tokenizer.json)")
    .requiredOption('--run <dir>', 'run directory, e.g. runs/shakespeare-char')
    .requiredOption('--out <dir>', 'the folder to write (must not exist, or be empty)')
    .addOption(new Option('--format <format>', 'output format').choices(['hf']).default('hf'))
    .addOption(new Option('--checkpoint <which>', 'which checkpoint').choices(['best', 'latest']).default('best'))
    .action((opts: { run: string; out: string; checkpoint: 'best' | 'latest' }) => {
      const result = exportHf(opts.run, opts.out, opts.checkpoint);
      console.log(`wrote ${result.dir} (${result.architecture}): ${result.files.join(', ')}`);
    });

  program
    .command('import')
    .description('a Hugging Face model folder (LlamaForCausalLM or GPT2LMHeadModel, safetensors, tokenizer.json) as a TensorLM run directory')
    .requiredOption('--from <folder>', 'the Hugging Face folder (config.json, model.safetensors or its sharded index, tokenizer.json)')
    .option('--name <name>', "the run's name (default: the folder's name)")
    .option('--out-dir <dir>', 'directory of runs', 'runs')
    .option('--data <name|path>', "the text a later 'tensorlm train --resume' continues training on", 'tinyshakespeare')
    .action((opts: { from: string; name?: string; outDir: string; data: string }) => {
      const { files, architecture, model } = importHf(opts.from, { outDir: opts.outDir, name: opts.name, train: { data: opts.data } });
      console.log(`imported ${opts.from} (${architecture}, ${model.numParameters().toLocaleString('en-US')} parameters) as ${files.dir}; try: tensorlm sample --run ${files.dir}`);
    });
}
