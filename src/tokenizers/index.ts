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
export { type Tokenizer, type EncodeOptions } from './tokenizer.js';
export { tokenizerFromJSON, loadTokenizer } from './load.js';
export { GPT2_PATTERN, pretokenize } from './pretokenize.js';
export { BYTE_TO_UNICODE, bytesToGPT2String, gpt2StringToBytes } from './bytes.js';
