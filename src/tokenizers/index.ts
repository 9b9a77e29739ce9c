/** Tokenizers: character-level and byte-level BPE (trainable, GPT-2 compatible). */
export { CharTokenizer, type CharTokenizerOptions, type CharTokenizerJSON } from './char.js';
export {
  BPETokenizer,
  type BPEModel,
  type BPETokenizerJSON,
  type BPETrainOptions,
  type BPETrainInput,
  type GPT2LoadOptions,
} from './bpe.js';
export {
  type Tokenizer,
  type EncodeOptions,
  MAX_VOCAB_SIZE,
  MAX_SPECIAL_TOKENS,
  MAX_SPECIAL_TOKEN_LENGTH,
  ROUND_TRIP_PROBE,
  checkRoundTrip,
} from './tokenizer.js';
export { tokenizerFromJSON, loadTokenizer } from './load.js';
export {
  GPT2_PATTERN,
  CL100K_PATTERN,
  KNOWN_PRETOKENIZERS,
  MAX_PATTERN_LENGTH,
  MAX_PATTERN_PROGRAM_SIZE,
  MAX_PATTERN_WINDOW,
  pretokenize,
  resolvePretokenizer,
  type Pretokenizer,
  type PretokenizerName,
  type PretokenizerSpec,
} from './pretokenize.js';
export { BYTE_TO_UNICODE, bytesToGPT2String, gpt2StringToBytes } from './bytes.js';
export {
  TIKTOKEN_ENCODINGS,
  mergesFromRanks,
  pretokenizerForTiktokenPattern,
  tiktokenNameOf,
  tiktokenTokenizer,
  tokenizerFromTiktoken,
  type TiktokenEncodingName,
  type TiktokenRanks,
} from './tiktoken.js';
export { encodeChunks, encodeChunksAsync, StreamEncoder, type StreamEncodeOptions } from './stream.js';
export { EncoderPool, encodeBatch, encodeDocuments, type EncoderPoolOptions, type ParallelEncodeOptions } from './parallel.js';
