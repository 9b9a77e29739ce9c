/** `tensorlm export` and `tensorlm import`: runs in and out of the Hugging Face ecosystem (src/interop). */
import { Option, type Command } from 'commander';
import { exportGguf } from '../../interop/export.js';
import { GGUF_TENSOR_TYPES, type GgufTensorType } from '../../interop/gguf.js';
import { exportHf, importHf } from '../../interop/hf.js';

export function registerInteropCommands(program: Command): void {
  program
    .command('export')
    .description("a run's checkpoint as a Hugging Face model folder (LlamaForCausalLM or GPT2LMHeadModel: config.json, model.safetensors, tokenizer.json) or a GGUF file for llama.cpp")
    .requiredOption('--run <dir>', 'run directory, e.g. runs/shakespeare-char')
    .requiredOption('--out <path>', 'hf: the folder to write (must not exist, or be empty); gguf: the .gguf file')
    .addOption(new Option('--format <format>', 'output format').choices(['hf', 'gguf']).default('hf'))
    .addOption(new Option('--type <type>', 'gguf: tensor type of the weight matrices (norms and biases stay F32)').choices(GGUF_TENSOR_TYPES.map((t) => t.toLowerCase())).default('f32'))
    .addOption(new Option('--checkpoint <which>', 'which checkpoint').choices(['best', 'latest']).default('best'))
    .action((opts: { run: string; out: string; format: 'hf' | 'gguf'; type: string; checkpoint: 'best' | 'latest' }) => {
      if (opts.format === 'gguf') {
        const r = exportGguf(opts.run, opts.out, { type: opts.type.toUpperCase() as GgufTensorType, which: opts.checkpoint });
        console.log(`wrote ${opts.out} (GGUF v3, ${r.architecture}, ${opts.type.toUpperCase()}, ${r.tensors} tensors, ${r.bytes.toLocaleString('en-US')} bytes)`);
        return;
      }
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
