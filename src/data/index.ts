/** Data: named datasets and local text, the encoded-corpus cache, and batching for LM training. */
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
