/** Training and generation throughput of the preset models, next to PyTorch's (filled in once the models exist). */
export interface ModelFigures {
  name: string;
}

export function runModelBench(options: { budgetSeconds: number; threadCounts: number[]; torchAvailable: boolean; print: (line: string) => void }): ModelFigures[] {
  options.print('model training/generation figures: pending the transformer model (issue 5)');
  return [];
}
