/** Post-training (`tensorlm/posttrain`): the fine-tuning stages and their losses. */
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';

// A package entry of its own that imports library modules directly, not src/index.ts: it names
// Node's backends too (this only stores the installer; nothing loads until a kernel runs).
setBackendInstaller(installNodeBackends);

export * from './losses.js';
export { sft, resolveSftConfig, paddedBatch, packedBatch, scoreTask, DEFAULT_SFT_CONFIG, type SftConfig, type SftExample, type SftOptions, type SftResult } from './sft.js';
export { rl, resolveRlConfig, sampleGroup, replyReward, rolloutLoss, DEFAULT_RL_CONFIG, DYNAMIC_SAMPLING_DRAWS, type RlConfig, type RlOptions, type RlResult, type RolloutBatch } from './rl.js';
export {
  dpo,
  resolveDpoConfig,
  wrongAnswer,
  taskPreferencePairs,
  renderPair,
  preferenceBatch,
  preferenceLogProbs,
  DEFAULT_DPO_CONFIG,
  type DpoConfig,
  type DpoRunOptions,
  type DpoRunResult,
  type PreferenceBatch,
  type PreferenceStats,
  type RenderedPair,
} from './dpo.js';
export { HeldOutTasks, type StageConfig, type StageOptions, type StageResult, type TaskProblems } from './stage.js';
export { saveAdapter, loadAdapter, mergeRun, adapterPath, ADAPTER_FILE } from './merge.js';
export {
  pipeline,
  resolvePipelineConfig,
  runFinished,
  fewShotPrompt,
  scoreFewShot,
  stageGains,
  stageTable,
  reportMarkdown,
  accuracySpec,
  DEFAULT_PIPELINE_CONFIG,
  PIPELINE_STAGES,
  type PipelineConfig,
  type PipelineStage,
  type PipelineOptions,
  type PipelineHooks,
  type PipelineResult,
  type PipelineReport,
  type StageCard,
  type StageGain,
} from './pipeline.js';
