/** Reading and writing weights: safetensors; JSON from files that may be damaged (json.ts). */
export {
  saveSafetensors,
  loadSafetensors,
  readSafetensorsHeader,
  saveModuleSafetensors,
  loadModuleSafetensors,
  huggingFaceLlamaName,
  MAX_HEADER_BYTES,
  MAX_TENSORS,
  type LoadModuleOptions,
  type LoadedSafetensorsFile,
  type SaveSafetensorsOptions,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type LoadedSafetensors,
} from './safetensors.js';
export { describeValue, MAX_JSON_DEPTH, parseJsonText, quoteText, scanJson, stripBom, truncateList, type JsonLimits } from './json.js';
