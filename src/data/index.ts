/**
 * Data: named datasets and local text, the encoded-corpus cache, batching for LM training, and
 * token shards. Document cleaning and deduplication are the `tensorlm/prepare` entry
 * (data/prepare/), kept out of this one so that importing TensorLM does not load their libraries.
 */
export {
  DATASETS,
  resolveDataset,
  readDatasetText,
  loadText,
  defaultDataDir,
  sha256Hex,
  type DatasetInfo,
  type DownloadResponse,
  type FetchFunction,
  type ResolveOptions,
  type ResolvedDataset,
} from './resolve.js';
export { encodeCorpus, tokenArrayFor, type EncodeCorpusOptions, type EncodedCorpus, type TextEncoderLike, type TokenArray } from './cache.js';
export { TokenDataset, TextDataset, type Batch, type Split, type SplitOptions, type TokenSequence, type TextDatasetLoadOptions } from './dataset.js';
export { writeFileAtomic, readTextFile } from './files.js';
export {
  ShardDataset,
  ShardSetWriter,
  writeShardSet,
  writeShardsFromDocuments,
  readShardManifest,
  readShardHeader,
  encodeShardHeader,
  shardDtypeFor,
  DEFAULT_SHARD_TOKENS,
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  SHARD_MANIFEST,
  type ShardDocumentsOptions,
  type ShardDtype,
  type ShardFileInfo,
  type ShardHeader,
  type ShardManifest,
} from './shards.js';
