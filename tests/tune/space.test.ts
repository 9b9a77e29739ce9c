/** Search spaces: parsing, every validation error names the option, params applied to a config. */
import { describe, expect, it } from 'vitest';
import { applyParams, baseValue, canonicalJson, contains, parseSearchSpace, snapToStep, stepValues } from '../../src/tune/space.js';
import { baselineParams, buildSettings, settingsAsInput, settingsConflicts } from '../../src/tune/study.js';

describe('search space', () => {
  it('parses every distribution type, keeping key order', () => {
    const space = parseSearchSpace({
      lr: { type: 'logUniform', low: 1e-4, high: 1e-2 },
      weightDecay: { type: 'uniform', low: 0, high: 0.2, step: 0.05 },
      beta2: { type: 'uniform', low: 0.9, high: 0.999 },
      warmupSteps: { type: 'int', low: 0, high: 200, step: 50 },
      batchSize: { type: 'int', low: 8, high: 64, log: true },
      'model.dModel': { type: 'choice', values: [64, 128] },
      'model.norm': { type: 'choice', values: ['layer', 'rms'] },
      'model.tieWeights': { type: 'choice', values: [true, false] },
      dropout: { type: 'choice', values: [null, 0.1] },
    });
    expect(Object.keys(space)).toEqual(['lr', 'weightDecay', 'beta2', 'warmupSteps', 'batchSize', 'model.dModel', 'model.norm', 'model.tieWeights', 'dropout']);
    expect(space.batchSize).toEqual({ type: 'int', low: 8, high: 64, log: true });
    expect(space.warmupSteps).toEqual({ type: 'int', low: 0, high: 200, step: 50 });
  });

  const bad: [string, unknown, RegExp][] = [
    ['an array', [], /expected a JSON object/],
    ['an empty space', {}, /no options to tune/],
    ['an unknown key', { lrr: { type: 'logUniform', low: 1e-4, high: 1e-2 } }, /unknown train config key 'lrr'.*known: .*\blr\b/],
    ['an unknown model field', { 'model.width': { type: 'choice', values: [1] } }, /unknown model field 'width' in 'model.width'.*dModel/],
    ['the budget', { maxSteps: { type: 'int', low: 1, high: 9 } }, /'maxSteps' cannot be tuned: the budget sets it/],
    ['the vocab size', { 'model.vocabSize': { type: 'int', low: 1, high: 9 } }, /'model.vocabSize' cannot be tuned/],
    ['the whole model', { model: { type: 'choice', values: [1] } }, /use 'model.<field>' keys/],
    ['an unknown type', { lr: { type: 'loguniform', low: 1, high: 2 } }, /search space 'lr': "type" must be one of logUniform, uniform, int, choice, got "loguniform"/],
    ['a non-object', { lr: 0.1 }, /search space 'lr': expected an object/],
    ['an unknown field', { lr: { type: 'logUniform', low: 1e-4, hi: 1e-2 } }, /search space 'lr': unknown field "hi" for type logUniform \(expected type, low, high\)/],
    ['a missing bound', { lr: { type: 'logUniform', low: 1e-4 } }, /search space 'lr': "low" and "high" must be finite numbers/],
    ['log of zero', { lr: { type: 'logUniform', low: 0, high: 1 } }, /logUniform needs low > 0, got 0/],
    ['low above high', { weightDecay: { type: 'uniform', low: 0.2, high: 0.1 } }, /search space 'weightDecay': needs low < high/],
    ['a negative step', { weightDecay: { type: 'uniform', low: 0, high: 0.1, step: -1 } }, /"step" must be a positive number/],
    ['a fractional int bound', { warmupSteps: { type: 'int', low: 0.5, high: 10 } }, /int needs integer "low" and "high"/],
    ['a log int from 0', { batchSize: { type: 'int', low: 0, high: 64, log: true } }, /"log": true needs low ≥ 1, got 0/],
    ['log with a step', { batchSize: { type: 'int', low: 8, high: 64, log: true, step: 8 } }, /"step" cannot be combined with "log": true/],
    ['an empty choice', { 'model.dModel': { type: 'choice', values: [] } }, /"values" must be a non-empty array/],
    ['duplicate choices', { 'model.dModel': { type: 'choice', values: [64, 64] } }, /choice values must be distinct/],
    ['an object choice', { 'model.dModel': { type: 'choice', values: [{}] } }, /choice values must be numbers, strings, booleans or null/],
    ['a float for an integer option', { batchSize: { type: 'uniform', low: 8, high: 64 } }, /'batchSize' takes an integer; use \{"type": "int", \.\.\.\} or a choice of integers, not uniform/],
    ['a fractional choice for an integer option', { 'model.dModel': { type: 'choice', values: [64, 96.5] } }, /choice value 96.5 is not an integer/],
    ['a range for a string option', { 'model.norm': { type: 'uniform', low: 0, high: 1 } }, /'model.norm' takes a string; use \{"type": "choice"/],
    ['a number for a string option', { preset: { type: 'choice', values: [1] } }, /choice value 1 is not a string/],
  ];
  for (const [what, raw, message] of bad) {
    it(`rejects ${what}`, () => expect(() => parseSearchSpace(raw)).toThrow(message));
  }

  it('step lattices have no float noise and snap into range', () => {
    expect(stepValues(0, 0.3, 0.1)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(stepValues(0, 0.25, 0.1)).toEqual([0, 0.1, 0.2]);
    expect(snapToStep(0.26, 0, 0.3, 0.1)).toBe(0.3);
    expect(snapToStep(5, 0, 0.3, 0.1)).toBe(0.3);
    expect(snapToStep(-5, 0, 0.3, 0.1)).toBe(0);
  });

  it('contains() knows what each distribution can produce', () => {
    const s = parseSearchSpace({ lr: { type: 'logUniform', low: 1e-4, high: 1e-2 }, warmupSteps: { type: 'int', low: 0, high: 100, step: 10 }, weightDecay: { type: 'uniform', low: 0, high: 0.3, step: 0.1 }, 'model.dModel': { type: 'choice', values: [64, 128] } });
    expect(contains(s.lr, 3e-3)).toBe(true);
    expect(contains(s.lr, 3e-2)).toBe(false);
    expect(contains(s.warmupSteps, 30)).toBe(true);
    expect(contains(s.warmupSteps, 35)).toBe(false);
    expect(contains(s.weightDecay, 0.2)).toBe(true);
    expect(contains(s.weightDecay, 0.15)).toBe(false);
    expect(contains(s['model.dModel'], 128)).toBe(true);
    expect(contains(s['model.dModel'], '128')).toBe(false);
  });

  it('applies params to a base config without touching it; model.<field> goes into the model overrides', () => {
    const base = { lr: 1e-3, model: { nLayers: 2 } };
    const out = applyParams(base, { lr: 5e-3, 'model.dModel': 96, batchSize: 8 });
    expect(out).toEqual({ lr: 5e-3, batchSize: 8, model: { nLayers: 2, dModel: 96 } });
    expect(base).toEqual({ lr: 1e-3, model: { nLayers: 2 } });
    expect(applyParams({}, { lr: 1 })).toEqual({ lr: 1 });
  });

  it('baseline values come from the base config, then the defaults and the preset', () => {
    expect(baseValue({ lr: 1e-3 }, 'lr')).toBe(1e-3);
    expect(baseValue({}, 'lr')).toBe(3e-3);
    expect(baseValue({}, 'model.dModel')).toBe(128);
    expect(baseValue({ model: { dModel: 64 } }, 'model.dModel')).toBe(64);
    const space = parseSearchSpace({ lr: { type: 'logUniform', low: 1e-4, high: 1e-2 }, 'model.dModel': { type: 'choice', values: [64, 128] } });
    expect(baselineParams({ space, base: {} })).toEqual({ lr: 3e-3, 'model.dModel': 128 });
    expect(() => baselineParams({ space, base: { lr: 0.5 } })).toThrow(/--baseline: the base config's lr = 0.5 is not a value its search space can take/);
  });

  it('canonical JSON ignores key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 1, x: 2 }], c: 2 } })).toBe(canonicalJson({ a: { c: 2, d: [1, { x: 2, y: 1 }] }, b: 1 }));
  });
});

describe('study settings', () => {
  const space = parseSearchSpace({ lr: { type: 'logUniform', low: 1e-4, high: 1e-2 } });

  it('fills defaults and derives pruner resources from the budget', () => {
    const s = buildSettings({ space, budgetSteps: 400 });
    expect(s.sampler).toEqual({ type: 'tpe', nStartupTrials: 10, nEiCandidates: 24 });
    expect(s.pruner).toEqual({ type: 'median', nStartupTrials: 5, nWarmupSteps: 100 });
    expect(buildSettings({ space, budgetSteps: 900, pruner: 'asha' }).pruner).toEqual({ type: 'asha', minResource: 100, reductionFactor: 3, minEarlyStoppingRate: 0 });
    expect(buildSettings({ space, budgetTokens: 90_000, pruner: 'asha', reductionFactor: 2 }).pruner).toMatchObject({ minResource: 22500, reductionFactor: 2 });
  });

  it('names the option in every error', () => {
    expect(() => buildSettings({ budgetSteps: 10 })).toThrow(/needs a search space: pass --space/);
    expect(() => buildSettings({ space })).toThrow(/--budget-steps <n> or --budget-tokens <n>/);
    expect(() => buildSettings({ space, budgetSteps: 10, budgetTokens: 10 })).toThrow(/either --budget-steps or --budget-tokens, not both/);
    expect(() => buildSettings({ space, budgetSteps: 10, sampler: 'random', startupTrials: 3 })).toThrow(/--startup-trials does not apply to the random sampler/);
    expect(() => buildSettings({ space, budgetSteps: 10, pruner: 'median', minResource: 3 })).toThrow(/--min-resource does not apply to the 'median' pruner/);
    expect(() => buildSettings({ space, budgetSteps: 0 })).toThrow(/--budget-steps must be a positive integer, got 0/);
    expect(() => buildSettings({ space, budgetSteps: 10, base: { lr: -1 } })).toThrow(/--config: lr must be a positive number/);
    expect(() => buildSettings({ space, budgetSteps: 10, base: { bogus: 1 } as never })).toThrow(/--config: unknown train config key "bogus"/);
    expect(() => buildSettings({ space: parseSearchSpace({ warmupSteps: { type: 'int', low: 0, high: 5000 } }), budgetSteps: 10, sampler: 'grid' })).toThrow(/grid sampler: 'warmupSteps' has 5001 integer values/);
  });

  it('reports each option that conflicts with the stored study, and only those given', () => {
    const stored = settingsAsInput(buildSettings({ space, budgetSteps: 100, sampler: 'tpe', startupTrials: 4 }), 20);
    expect(settingsConflicts(stored, {})).toEqual([]);
    expect(settingsConflicts(stored, { sampler: 'tpe', budgetSteps: 100, space: JSON.parse(JSON.stringify(space)) })).toEqual([]);
    const conflicts = settingsConflicts(stored, { sampler: 'random', budgetSteps: 200, trials: 30, gridPoints: 4, space: parseSearchSpace({ lr: { type: 'logUniform', low: 1e-5, high: 1e-2 } }) });
    expect(conflicts.sort()).toEqual([
      '--budget-steps: the study has 100, this worker was given 200',
      '--grid-points does not apply: the study\'s sampler is tpe',
      '--sampler: the study has "tpe", this worker was given "random"',
      "--space: this worker's search space differs from the study's",
      '--trials: the study has 20, this worker was given 30',
    ]);
    expect(settingsConflicts(stored, { budgetTokens: 1000 })).toEqual(['--budget-tokens does not apply: the study has a step budget']);
  });
});
