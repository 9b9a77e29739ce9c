/**
 * Evaluation (`tensorlm/evals`): bits per byte, multiple-choice log-likelihood, exact-match
 * generation, built-in Shakespeare tasks, and the run report card.
 */
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';

// A package entry of its own that imports library modules directly: it names Node's backends
// (this only stores the installer; nothing loads until a kernel runs).
setBackendInstaller(installNodeBackends);

export { bitsPerByte, bitsPerByteFromFigures, predictedBytes, type BitsPerByte } from './bits-per-byte.js';
export { modelContext, scoreContinuations, scoreTokenContinuations, type ContinuationRequest, type ContinuationScore, type LikelihoodOptions, type TokenContinuation } from './likelihood.js';
export {
  accuracyFigures,
  chanceAccuracy,
  scoreMultipleChoice,
  utf8Length,
  type AccuracyFigures,
  type LikelihoodScorer,
  type MultipleChoiceDetails,
  type MultipleChoiceExample,
  type TaskResult,
} from './multiple-choice.js';
export { checkChatModel, generativeTaskSeed, isGenerativeTaskName, scoreGenerativeTask } from './generative.js';
export {
  DEFAULT_TRAIN_FRACTION,
  SHAKESPEARE_DATASET,
  SHAKESPEARE_TASK_NAMES,
  heldOutStart,
  isShakespeareTaskName,
  shakespeareContinuationTask,
  shakespeareSpeakerTask,
  shakespeareTask,
  type ShakespeareTaskName,
  type ShakespeareTaskOptions,
} from './shakespeare.js';
export { BUILTIN_EVAL_TASKS, parseEvalTaskList, parseMultipleChoiceJsonl, readMultipleChoiceFile, type EvalTaskSpec } from './tasks.js';
export {
  DEFAULT_TASK_EXAMPLES,
  evaluateTask,
  formatEvalTasksReport,
  formatTaskTable,
  writeEvalTasksReport,
  type EvalTasksReport,
  type EvaluateTaskOptions,
} from './evaluate.js';
export {
  buildRunReport,
  writeRunReport,
  runReportMarkdown,
  runReportPaths,
  readEvalTasks,
  bucketLossByPosition,
  type RunReport,
  type RunReportOptions,
  type RunReportPaths,
} from './report.js';
