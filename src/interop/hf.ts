/**
 * `tensorlm export --format hf` and `tensorlm import`: a trained run as a Hugging Face model folder,
 * and such a folder as a TensorLM run directory that sample, eval and the post-training stages
 * accept.
 *
 *   exportHf('runs/shakespeare-char', 'export/shakespeare-hf')   // config.json, model.safetensors, tokenizer.json, …
 *   importHf('export/shakespeare-hf', { outDir: 'runs', name: 'back' })
 *
 * The folder: config.json (LlamaForCausalLM or GPT2LMHeadModel, models/… hf-model.ts),
 * model.safetensors (float32, HF names and layouts), tokenizer.json and tokenizer_config.json
 * (hf-tokenizer.ts), generation_config.json. Import also reads sharded checkpoints
 * (model.safetensors.index.json) and F16/BF16 weights (converted to float32).
 *
 * Nothing partial is left behind: export writes into a temporary folder beside the target and
 * renames it at the end; import checks everything before it creates the run directory.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readJsonFile } from '../data/files.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { TransformerLM } from '../models/transformer.js';
import type { TransformerConfig } from '../models/config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { saveCheckpoint, type CheckpointMeta } from '../train/checkpoint.js';
import { resolveTrainConfig, type TrainConfig } from '../train/config.js';
import { prepareRunDirectory, runFiles, type RunFiles } from '../train/run-loop.js';
import { modelOptimizer, runGenerators } from '../train/setup.js';
import { loadTransformerRun, type RunConfig } from '../train/trainer.js';
import { configFromHf, fromHfTensors, hfArchitecture, hfConfigJson, toHfTensors, type HfArchitecture } from './hf-model.js';
import { fromHfTokenizerJson, specialIds, toHfTokenizerJson } from './hf-tokenizer.js';

export interface HfExportResult {
  dir: string;
  architecture: HfArchitecture;
  files: string[];
}

/** Writes `build(tmp)`'s files into a fresh folder `out`, or nothing at all (temporary folder + rename). */
function writeFolderAtomic(out: string, build: (dir: string) => void): string[] {
  const target = resolve(out);
  if (existsSync(target) && (!statSync(target).isDirectory() || readdirSync(target).length > 0)) throw new Error(`${out} already exists and is not an empty folder; choose another --out`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    build(tmp);
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(tmp, target);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  return readdirSync(target).sort();
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

/** The Hugging Face folder of a model and its tokenizer (the library call behind exportHf). */
export function writeHfFolder(out: string, model: TransformerLM, tokenizer: Tokenizer): HfExportResult {
  const config = model.config;
  const architecture = hfArchitecture(config);
  if (tokenizer.vocabSize > config.vocabSize) throw new Error(`the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocabSize ${config.vocabSize}`);
  const ids = specialIds(tokenizer);
  const tensors = toHfTensors(model.stateDict(), config, architecture);
  const files = writeFolderAtomic(out, (dir) => {
    writeFileSync(join(dir, 'config.json'), json(hfConfigJson(config, architecture, ids)));
    // transformers checks metadata.format === 'pt' before loading safetensors weights.
    saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(toHfTokenizerJson(tokenizer)) + '\n');
    const name = (id: number | null) => (id === null ? null : (Object.entries(tokenizer.specialTokens).find(([, v]) => v === id)?.[0] ?? null));
    writeFileSync(join(dir, 'tokenizer_config.json'), json({ tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: config.maxSeqLen, bos_token: name(ids.bos), eos_token: name(ids.eos), clean_up_tokenization_spaces: false }));
    writeFileSync(join(dir, 'generation_config.json'), json({ bos_token_id: ids.bos, eos_token_id: ids.eos, do_sample: true, temperature: 0.8, max_length: config.maxSeqLen }));
  });
  return { dir: out, architecture, files };
}

/** `tensorlm export --format hf`: a run's checkpoint (best by default) as a Hugging Face model folder. */
export function exportHf(runDir: string, out: string, which: 'best' | 'latest' = 'best'): HfExportResult {
  const run = loadTransformerRun(runDir, which, 'export');
  if (run.config.lora) throw new Error(`${runDir} carries LoRA adapters; merge them first (tensorlm merge --run ${runDir}) and export the merged run`);
  return writeHfFolder(out, run.model, run.tokenizer);
}

/** A Hugging Face model folder read into memory: the model (float32) and its tokenizer. */
export interface HfModel {
  architecture: HfArchitecture;
  config: TransformerConfig;
  model: TransformerLM;
  tokenizer: Tokenizer;
}

/** The weights of a folder: model.safetensors, or the shards model.safetensors.index.json lists. */
function readWeights(folder: string): Map<string, Tensor> {
  const single = join(folder, 'model.safetensors');
  const index = join(folder, 'model.safetensors.index.json');
  const tensors = new Map<string, Tensor>();
  if (existsSync(index)) {
    const map = (readJsonFile(index, 'safetensors index') as { weight_map?: unknown }).weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${index}: "weight_map" must be an object of tensor name → shard file`);
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) throw new Error(`${index}: the shard of '${name}' must be a file name in the folder, got ${JSON.stringify(shard)?.slice(0, 60)}`);
      byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
    }
    for (const [shard, names] of byShard) {
      const path = join(folder, shard);
      if (!existsSync(path)) throw new Error(`${index} lists shard ${shard}, which is missing from ${folder}`);
      const file = loadSafetensors(path, { names });
      for (const name of names) {
        const t = file.tensors[name];
        if (!t) throw new Error(`${index} puts '${name}' in ${shard}, which does not hold it`);
        tensors.set(name, t);
      }
    }
    return tensors;
  }
  if (!existsSync(single)) throw new Error(`${folder} has neither model.safetensors nor model.safetensors.index.json (only safetensors weights are read)`);
  for (const [name, t] of Object.entries(loadSafetensors(single).tensors)) tensors.set(name, t);
  return tensors;
}

/** Reads a Hugging Face folder (config.json, safetensors weights, tokenizer.json) into a TransformerLM. */
export function readHfFolder(folder: string): HfModel {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new Error(`${folder} is not a folder`);
  const configPath = join(folder, 'config.json');
  if (!existsSync(configPath)) throw new Error(`${folder} has no config.json`);
  const raw = readJsonFile(configPath, 'config.json');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${configPath} must hold a JSON object`);
  const { arch, config } = configFromHf(raw as Record<string, unknown>, configPath);
  const tokenizerPath = join(folder, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) throw new Error(`${folder} has no tokenizer.json (the tokenizers library's format)`);
  const tokenizer = fromHfTokenizerJson(readJsonFile(tokenizerPath, 'tokenizer.json'), tokenizerPath);
  if (tokenizer.vocabSize > config.vocabSize) throw new Error(`${tokenizerPath} has ${tokenizer.vocabSize} tokens, more than vocab_size ${config.vocabSize} in ${configPath}`);
  const state = fromHfTensors(readWeights(folder), config, arch, folder);
  const model = new TransformerLM(config);
  model.loadStateDict(state);
  model.eval();
  return { architecture: arch, config, model, tokenizer };
}

export interface HfImportOptions {
  /** Where runs live (default 'runs'). */
  outDir?: string;
  /** The run's name (default: the folder's name). */
  name?: string;
  /**
   * Training settings the run records (e.g. `data`, `maxSteps`, `lr`): what `tensorlm train
   * --resume` continues with. The model and the tokenizer always come from the folder.
   */
  train?: Partial<Omit<TrainConfig, 'model' | 'preset' | 'tokenizer' | 'name' | 'outDir'>>;
}

/**
 * `tensorlm import --from <folder>`: a Hugging Face folder as a run directory (config.json,
 * tokenizer.json, best and latest checkpoints at step 0 with a fresh optimizer state).
 */
export function importHf(folder: string, options: HfImportOptions = {}): { files: RunFiles; architecture: HfArchitecture; model: TransformerLM; tokenizer: Tokenizer } {
  const { architecture, config, model, tokenizer } = readHfFolder(folder);
  const name = options.name ?? basename(resolve(folder)).replace(/[^\w.-]/g, '-');
  const files = runFiles(options.outDir ?? 'runs', name);
  if (existsSync(files.latest)) throw new Error(`${files.dir} already holds a run; choose another --name`);
  const { vocabSize: _vocabSize, ...modelOverrides } = config;
  // A training config that rebuilds exactly this model, so `train --resume` and the stages accept the run.
  const train = resolveTrainConfig({
    ...options.train,
    name,
    outDir: options.outDir ?? 'runs',
    tokenizer: tokenizer.type === 'char' ? 'char' : files.tokenizer,
    preset: 'tiny',
    model: { ...modelOverrides, mup: null },
    blockSize: Math.min(options.train?.blockSize ?? 128, config.maxSeqLen),
  });
  const runConfig: RunConfig & { importedFrom: string; architecture: HfArchitecture } = { train, model: config, stage: 'import', importedFrom: resolve(folder), architecture };
  prepareRunDirectory(files, runConfig, tokenizer, false);
  const gens = runGenerators(train.seed);
  const meta: CheckpointMeta = { step: 0, tokensSeen: 0, elapsedSeconds: 0, bestValLoss: null, rng: { data: gens.data.getState(), dropout: gens.dropout.getState() }, config: runConfig, plannedSteps: train.maxSteps };
  // The optimizer `tensorlm train` builds for this model, so that a resume finds its parameter groups.
  const optimizer = modelOptimizer(model, train);
  saveCheckpoint(files.best, model, optimizer, meta, { tokenizer });
  saveCheckpoint(files.latest, model, optimizer, meta, { tokenizer });
  return { files, architecture, model, tokenizer };
}
