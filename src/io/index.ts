/** Reading and writing weights: safetensors. */
export {
  saveSafetensors,
  loadSafetensors,
  readSafetensorsHeader,
  saveModuleSafetensors,
  loadModuleSafetensors,
  huggingFaceLlamaName,
  type LoadModuleOptions,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type LoadedSafetensors,
} from './safetensors.js';
