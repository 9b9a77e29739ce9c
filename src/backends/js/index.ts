/** The plain-JavaScript reference backend: complete, portable, and the oracle for every other backend. */
import type { Kernels } from '../kernels.js';
import { decodeAttention, flashAttentionBackward, flashAttentionForward } from './attention.js';
import { binary, copy, geluWithDerivative, unary, where } from './elementwise.js';
import { adamStep, crossEntropy, crossEntropyBackward, layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, scaledSoftmax, sgdStep, softmax, softmaxBackward } from './fused.js';
import { gather, indexAdd, indexSelect, scatterAdd } from './indexing.js';
import { gemm } from './matmul.js';
import { gemmInt8 } from './quantized.js';
import { argReduce, reduce } from './reduce.js';
import { recurrentCell, recurrentCellBackward } from './recurrent.js';
import { selectiveScanBackward, selectiveScanForward } from './scan.js';

export const jsKernels: Kernels = {
  unary,
  binary,
  where,
  copy,
  reduce,
  argReduce,
  gemm,
  gemmInt8,
  // Typed arrays are this backend's memory: nothing to allocate elsewhere.
  allocateInt8Weights: () => null,
  decodeAttention,
  gather,
  scatterAdd,
  indexSelect,
  indexAdd,
  softmax,
  softmaxBackward,
  scaledSoftmax,
  geluWithDerivative,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  crossEntropy,
  crossEntropyBackward,
  recurrentCell,
  recurrentCellBackward,
  flashAttentionForward,
  flashAttentionBackward,
  selectiveScanForward,
  selectiveScanBackward,
  sgdStep,
  adamStep,
};
