/** Document preparation (`tensorlm data prepare`): sources, cleaning, quality rules, deduplication. */
export { expandInputs, readDocuments, readFileDocuments, SOURCE_EXTENSIONS, type SourceDocument, type SourceOptions } from './sources.js';
export { normalizeText, type NormalizeOptions } from './normalize.js';
export { htmlToPlainText } from './html.js';
export { detectLanguage, parseLanguageList, LANGUAGE_MIN_CHARS, UNDETERMINED_LANGUAGE } from './language.js';
export {
  DEFAULT_QUALITY_RULES,
  QUALITY_RULE_NAMES,
  LINE_RULE_NAMES,
  applyQualityRules,
  applyRuleOverrides,
  checkRuleNames,
  defaultQualityRules,
  loadQualityRules,
  setRulesEnabled,
  type MaxRule,
  type MinRule,
  type QualityRuleName,
  type QualityRules,
  type QualityVerdict,
  type RangeRule,
  type StopWordRule,
  type SwitchRule,
} from './filters.js';
export { ExactDeduplicator, exactDedupKey } from './dedup.js';
export {
  MinHasher,
  NearDuplicateIndex,
  candidateProbability,
  chooseBands,
  estimateJaccard,
  shingleHashes,
  type BandChoice,
  type MinHashOptions,
  type NearDuplicateIndexOptions,
  type ShingleOptions,
} from './minhash.js';
export {
  DocumentCleaner,
  prepare,
  type CleanOptions,
  type CleanReport,
  type CleanVerdict,
  type DedupMode,
  type DedupSettings,
  type PrepareOptions,
  type PrepareReport,
  type RemovalStage,
  type StageCount,
} from './prepare.js';
