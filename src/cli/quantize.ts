/** The `--quantize int8|q8_0` flag of sample, chat and eval (issue 18; docs/performance.md). */
import { Option } from 'commander';
import type { LanguageModel } from '../models/language-model.js';
import { describeQuantization, quantizeModel, type QuantizeStats } from '../models/quantize.js';
import { TransformerLM } from '../models/transformer.js';
import { QUANT_FORMATS, type QuantFormat } from '../nn/quantized.js';

export function quantizeOption(): Option {
  return new Option('--quantize <format>', "run with int8 weight-only quantized projections: 'int8' (one scale per output channel) or 'q8_0' (blocks of 32, llama.cpp's Q8_0)").choices([...QUANT_FORMATS]);
}

/**
 * Quantizes the loaded model in place when `format` is given and prints the weight bytes before
 * and after once (through `log`: stderr where stdout carries the generated text).
 */
export function applyQuantize(model: LanguageModel, format: unknown, log: (line: string) => void): QuantizeStats | null {
  if (format === undefined) return null;
  if (!(model instanceof TransformerLM)) throw new Error('--quantize needs a transformer run (recurrent models are not quantized)');
  const stats = quantizeModel(model, format as QuantFormat);
  log(describeQuantization(stats));
  return stats;
}
