/**
 * Recurrent layers (src/nn/recurrent.ts): RNN (tanh, relu), LSTM, GRU and their cells against
 * PyTorch goldens (tests/golden/recurrent.json, written by tools/golden/recurrent.py from torch.nn's
 * own modules, whose state_dicts are loaded here by name), cells against one-step layers,
 * finite-difference gradients, dropout between layers, init and the error messages.
 */
import { describe, expect, it } from 'vitest';
import { F, Generator, nn, noGrad, randn, stack, Tensor } from '../../src/index.js';
import { expectClose, fromGolden, loadGolden, type GoldenTensor } from '../helpers/golden.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { expectOneLineError } from '../helpers/errors.js';

const { RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell } = nn;
type Mode = 'RNN_TANH' | 'RNN_RELU' | 'LSTM' | 'GRU';

interface LayerCase {
  name: string;
  mode: Mode;
  options: { inputSize: number; hiddenSize: number; numLayers: number; bias: boolean; batchFirst: boolean; bidirectional: boolean };
  stateDict: Record<string, GoldenTensor>;
  x: GoldenTensor;
  h0: GoldenTensor | null;
  c0: GoldenTensor | null;
  out: GoldenTensor;
  hN: GoldenTensor;
  cN: GoldenTensor | null;
  gradOut: GoldenTensor;
  gradH: GoldenTensor;
  gradC: GoldenTensor | null;
  grads: { x: GoldenTensor; h0?: GoldenTensor; c0?: GoldenTensor; params: Record<string, GoldenTensor> };
}

interface CellCase {
  name: string;
  mode: Mode;
  options: { inputSize: number; hiddenSize: number; bias: boolean };
  stateDict: Record<string, GoldenTensor>;
  x: GoldenTensor;
  h: GoldenTensor | null;
  c: GoldenTensor | null;
  hOut: GoldenTensor;
  cOut: GoldenTensor | null;
  gradH: GoldenTensor;
  gradC: GoldenTensor | null;
  grads: { x: GoldenTensor; h?: GoldenTensor; c?: GoldenTensor; params: Record<string, GoldenTensor> };
}

const golden = loadGolden<{ layers: LayerCase[]; cells: CellCase[] }>('recurrent.json');
const value = (g: GoldenTensor): Tensor => fromGolden(g).value;
const leaf = (g: GoldenTensor): Tensor => fromGolden(g, true).leaf;

/** torch's state_dict key in camelCase: weight_ih_l0_reverse → weightIhL0Reverse. */
const camel = (key: string): string => key.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());

const RTOL = 1e-5;
const ATOL = 1e-6;

function makeLayer(mode: Mode, o: LayerCase['options'], extra: nn.RNNBaseOptions = {}): InstanceType<typeof RNN> | InstanceType<typeof LSTM> | InstanceType<typeof GRU> {
  const options = { numLayers: o.numLayers, bias: o.bias, batchFirst: o.batchFirst, bidirectional: o.bidirectional, ...extra };
  if (mode === 'LSTM') return new LSTM(o.inputSize, o.hiddenSize, options);
  if (mode === 'GRU') return new GRU(o.inputSize, o.hiddenSize, options);
  return new RNN(o.inputSize, o.hiddenSize, { ...options, nonlinearity: mode === 'RNN_TANH' ? 'tanh' : 'relu' });
}

function loadTorch(module: nn.AnyModule, dict: Record<string, GoldenTensor>): void {
  const result = module.loadStateDict(Object.fromEntries(Object.entries(dict).map(([k, t]) => [camel(k), value(t)])));
  expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
}

/** Weighted sum of the given tensors with the given golden weights (the goldens' loss). */
function weighted(pairs: [Tensor, GoldenTensor | null][]): Tensor {
  let loss: Tensor | null = null;
  for (const [t, g] of pairs) {
    if (g === null) continue;
    const term = t.mul(value(g)).sum();
    loss = loss === null ? term : loss.add(term);
  }
  return loss as Tensor;
}

describe('RNN / LSTM / GRU against PyTorch (tests/golden/recurrent.json)', () => {
  it('has every mode, 12 cases each, covering each option both ways', () => {
    expect(golden.layers.length).toBe(48);
    for (const mode of ['RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU'] as const) {
      const cs = golden.layers.filter((c) => c.mode === mode);
      expect(cs.length).toBe(12);
      for (const key of ['bias', 'batchFirst', 'bidirectional'] as const) expect(new Set(cs.map((c) => c.options[key]))).toEqual(new Set([true, false]));
      expect(new Set(cs.map((c) => c.options.numLayers))).toEqual(new Set([1, 2]));
      expect(new Set(cs.map((c) => c.h0 !== null))).toEqual(new Set([true, false]));
      expect(cs.some((c) => c.x.shape.length === 2)).toBe(true);
    }
  });

  for (const c of golden.layers) {
    it(c.name, () => {
      const layer = makeLayer(c.mode, c.options);
      // The parameter names are torch's, camel-cased, in torch's order.
      expect(Object.keys(layer.stateDict())).toEqual(Object.keys(c.stateDict).map(camel));
      loadTorch(layer, c.stateDict);
      const x = leaf(c.x);
      const h0 = c.h0 ? leaf(c.h0) : null;
      const c0 = c.c0 ? leaf(c.c0) : null;
      let out: Tensor, hN: Tensor, cN: Tensor | null = null;
      if (layer instanceof LSTM) [out, [hN, cN]] = layer.forward(x, h0 && c0 ? [h0, c0] : null);
      else [out, hN] = (layer as InstanceType<typeof GRU>).forward(x, h0);
      expectClose(out, c.out, `${c.name}: out`, RTOL, ATOL);
      expectClose(hN, c.hN, `${c.name}: hN`, RTOL, ATOL);
      if (c.cN) expectClose(cN as Tensor, c.cN, `${c.name}: cN`, RTOL, ATOL);
      else expect(cN).toBeNull();
      weighted([
        [out, c.gradOut],
        [hN, c.gradH],
        [cN as Tensor, c.gradC],
      ]).backward();
      expectClose(x.grad as Tensor, c.grads.x, `${c.name}: grad x`, RTOL, ATOL);
      if (h0) expectClose(h0.grad as Tensor, c.grads.h0 as GoldenTensor, `${c.name}: grad h0`, RTOL, ATOL);
      if (c0) expectClose(c0.grad as Tensor, c.grads.c0 as GoldenTensor, `${c.name}: grad c0`, RTOL, ATOL);
      const params = Object.fromEntries(layer.namedParameters());
      for (const [k, g] of Object.entries(c.grads.params)) expectClose(params[camel(k)].grad as Tensor, g, `${c.name}: grad ${camel(k)}`, RTOL, ATOL);
    });
  }
});

describe('RNNCell / LSTMCell / GRUCell against PyTorch', () => {
  for (const c of golden.cells) {
    it(c.name, () => {
      const { inputSize, hiddenSize, bias } = c.options;
      const cell =
        c.mode === 'LSTM'
          ? new LSTMCell(inputSize, hiddenSize, { bias })
          : c.mode === 'GRU'
            ? new GRUCell(inputSize, hiddenSize, { bias })
            : new RNNCell(inputSize, hiddenSize, { bias, nonlinearity: c.mode === 'RNN_TANH' ? 'tanh' : 'relu' });
      expect(Object.keys(cell.stateDict())).toEqual(Object.keys(c.stateDict).map(camel));
      loadTorch(cell, c.stateDict);
      const x = leaf(c.x);
      const h = c.h ? leaf(c.h) : null;
      const cc = c.c ? leaf(c.c) : null;
      let hOut: Tensor, cOut: Tensor | null = null;
      if (cell instanceof LSTMCell) [hOut, cOut] = cell.forward(x, h && cc ? [h, cc] : null);
      else hOut = (cell as InstanceType<typeof GRUCell>).forward(x, h);
      expectClose(hOut, c.hOut, `${c.name}: h'`, RTOL, ATOL);
      if (c.cOut) expectClose(cOut as Tensor, c.cOut, `${c.name}: c'`, RTOL, ATOL);
      weighted([
        [hOut, c.gradH],
        [cOut as Tensor, c.gradC],
      ]).backward();
      expectClose(x.grad as Tensor, c.grads.x, `${c.name}: grad x`, RTOL, ATOL);
      if (h) expectClose(h.grad as Tensor, c.grads.h as GoldenTensor, `${c.name}: grad h`, RTOL, ATOL);
      if (cc) expectClose(cc.grad as Tensor, c.grads.c as GoldenTensor, `${c.name}: grad c`, RTOL, ATOL);
      const params = Object.fromEntries(cell.namedParameters());
      for (const [k, g] of Object.entries(c.grads.params)) expectClose(params[camel(k)].grad as Tensor, g, `${c.name}: grad ${camel(k)}`, RTOL, ATOL);
    });
  }
});

describe('cells against one-step layers', () => {
  const gen = new Generator(3);
  for (const mode of ['RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU'] as const) {
    it(`${mode}: a cell step equals a one-layer layer run for one step, and a loop of steps equals the layer`, () => {
      const opts = { inputSize: 3, hiddenSize: 4, numLayers: 1, bias: true, batchFirst: false, bidirectional: false };
      const layer = makeLayer(mode, opts, { generator: gen });
      const cell =
        mode === 'LSTM' ? new LSTMCell(3, 4) : mode === 'GRU' ? new GRUCell(3, 4) : new RNNCell(3, 4, { nonlinearity: mode === 'RNN_TANH' ? 'tanh' : 'relu' });
      const sd = layer.stateDict();
      cell.loadStateDict({ weightIh: sd.weightIhL0, weightHh: sd.weightHhL0, biasIh: sd.biasIhL0, biasHh: sd.biasHhL0 });
      const x = randn([5, 2, 3], { generator: gen });
      const h0 = randn([1, 2, 4], { generator: gen });
      const c0 = randn([1, 2, 4], { generator: gen });
      noGrad(() => {
        let out: Tensor, hN: Tensor;
        let cN: Tensor | null = null;
        if (layer instanceof LSTM) [out, [hN, cN]] = layer.forward(x, [h0, c0]);
        else [out, hN] = (layer as InstanceType<typeof GRU>).forward(x, h0);
        let h = h0.select(0, 0);
        let c = c0.select(0, 0);
        const steps: Tensor[] = [];
        for (let t = 0; t < 5; t++) {
          if (cell instanceof LSTMCell) [h, c] = cell.forward(x.select(0, t), [h, c]);
          else h = (cell as InstanceType<typeof GRUCell>).forward(x.select(0, t), h);
          steps.push(h);
        }
        expect(stack(steps, 0).toArray()).toEqual(out.toArray());
        expect(h.toArray()).toEqual(hN.select(0, 0).toArray());
        if (cN) expect(c.toArray()).toEqual(cN.select(0, 0).toArray());
        // One step: the layer's first output is the cell's first step.
        const [first] = layer instanceof LSTM ? layer.forward(x.narrow(0, 0, 1), [h0, c0]) : (layer as InstanceType<typeof GRU>).forward(x.narrow(0, 0, 1), h0);
        expect(first.select(0, 0).toArray()).toEqual(steps[0].toArray());
      });
    });
  }

  it('cells take unbatched input [inputSize] and state [hiddenSize]', () => {
    const cell = new LSTMCell(3, 4, { generator: new Generator(1) });
    const x = randn([3], { generator: new Generator(2) });
    const [h, c] = cell.forward(x);
    const [hb, cb] = cell.forward(x.unsqueeze(0));
    expect(h.shape).toEqual([4]);
    expect(h.toArray()).toEqual(hb.squeeze(0).toArray());
    expect(c.toArray()).toEqual(cb.squeeze(0).toArray());
    expect(cell.forward(x, [h, c])[0].shape).toEqual([4]);
  });
});

describe('finite-difference gradients', () => {
  const g = new Generator(11);
  const small = (shape: number[]): Tensor => randn(shape, { generator: g }).mul(0.6);

  it('RNNCell (tanh): x, h, weights and biases', () => {
    const cell = new RNNCell(3, 2);
    gradcheck(
      'RNNCell',
      (x, h, wIh, wHh, bIh, bHh) => {
        Object.assign(cell, { weightIh: wIh, weightHh: wHh, biasIh: bIh, biasHh: bHh });
        return cell.forward(x, h);
      },
      [small([2, 3]), small([2, 2]), small([2, 3]), small([2, 2]), small([2]), small([2])],
    );
  });

  it('LSTMCell: x, h, c, weights and biases', () => {
    const cell = new LSTMCell(2, 2);
    gradcheck(
      'LSTMCell',
      (x, h, c, wIh, wHh, bIh, bHh) => {
        Object.assign(cell, { weightIh: wIh, weightHh: wHh, biasIh: bIh, biasHh: bHh });
        const [h1, c1] = cell.forward(x, [h, c]);
        return stack([h1, c1], 0);
      },
      [small([2, 2]), small([2, 2]), small([2, 2]), small([8, 2]), small([8, 2]), small([8]), small([8])],
    );
  });

  it('GRUCell: x, h, weights and biases', () => {
    const cell = new GRUCell(2, 2);
    gradcheck(
      'GRUCell',
      (x, h, wIh, wHh, bIh, bHh) => {
        Object.assign(cell, { weightIh: wIh, weightHh: wHh, biasIh: bIh, biasHh: bHh });
        return cell.forward(x, h);
      },
      [small([2, 2]), small([2, 2]), small([6, 2]), small([6, 2]), small([6]), small([6])],
    );
  });

  it('a 2-layer bidirectional LSTM: x, h0 and c0', () => {
    const lstm = new LSTM(2, 2, { numLayers: 2, bidirectional: true, generator: new Generator(5) });
    gradcheck(
      'LSTM',
      (x, h0, c0) => {
        const [out, [hN, cN]] = lstm.forward(x, [h0, c0]);
        return F.linear(out.reshape([-1, 4]), randn([1, 4], { generator: new Generator(6) })).sum().add(hN.sum()).add(cN.mul(0.5).sum()).reshape([1]);
      },
      [small([3, 2, 2]), small([4, 2, 2]), small([4, 2, 2])],
    );
  });
});

describe('dropout between layers', () => {
  const x = randn([4, 2, 3], { generator: new Generator(21) });

  function pair(numLayers: number): [InstanceType<typeof GRU>, InstanceType<typeof GRU>] {
    const withDropout = new GRU(3, 4, { numLayers, dropout: 0.5, generator: new Generator(1), dropoutGenerator: new Generator(2) });
    const plain = new GRU(3, 4, { numLayers, generator: new Generator(1) });
    return [withDropout, plain];
  }

  it('is off in eval mode', () => {
    const [withDropout, plain] = pair(2);
    withDropout.eval();
    const [a, ha] = withDropout.forward(x);
    const [b, hb] = plain.forward(x);
    expect(a.toArray()).toEqual(b.toArray());
    expect(ha.toArray()).toEqual(hb.toArray());
  });

  it('acts in training mode between layers, seeded by dropoutGenerator', () => {
    const [withDropout, plain] = pair(2);
    const [a] = withDropout.forward(x);
    const [b] = plain.forward(x);
    expect(a.toArray()).not.toEqual(b.toArray());
    const [again] = new GRU(3, 4, { numLayers: 2, dropout: 0.5, generator: new Generator(1), dropoutGenerator: new Generator(2) }).forward(x);
    expect(again.toArray()).toEqual(a.toArray());
    // The first layer's final state is computed before any dropout.
    const [, ha] = withDropout.forward(x);
    const [, hb] = plain.forward(x);
    expect(ha.select(0, 0).toArray()).toEqual(hb.select(0, 0).toArray());
  });

  it('is never applied after the last layer', () => {
    const [withDropout, plain] = pair(1);
    expect(withDropout.forward(x)[0].toArray()).toEqual(plain.forward(x)[0].toArray());
  });
});

describe('init and module conventions', () => {
  it('draws every weight and bias from U(±1/√H), reproducibly from the generator', () => {
    const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, generator: new Generator(9) });
    const names = lstm.namedParameters().map(([n]) => n);
    expect(names).toEqual(
      ['L0', 'L0Reverse', 'L1', 'L1Reverse'].flatMap((s) => [`weightIh${s}`, `weightHh${s}`, `biasIh${s}`, `biasHh${s}`]),
    );
    const sd = lstm.stateDict();
    expect(sd.weightIhL0.shape).toEqual([16, 3]);
    expect(sd.weightIhL1.shape).toEqual([16, 8]);
    expect(sd.weightHhL1Reverse.shape).toEqual([16, 4]);
    for (const t of Object.values(sd)) for (const v of t.toArray()) expect(Math.abs(v)).toBeLessThanOrEqual(0.5);
    const again = new LSTM(3, 4, { numLayers: 2, bidirectional: true, generator: new Generator(9) }).stateDict();
    for (const k of names) expect(again[k].toArray()).toEqual(sd[k].toArray());
    expect(new GRU(3, 4, { bias: false }).namedParameters().map(([n]) => n)).toEqual(['weightIhL0', 'weightHhL0']);
  });

  it('returns outputs in the batchFirst layout and states time-free', () => {
    const rnn = new RNN(3, 5, { batchFirst: true, bidirectional: true, numLayers: 2 });
    const [out, hN] = rnn.forward(randn([2, 4, 3]));
    expect(out.shape).toEqual([2, 4, 10]);
    expect(hN.shape).toEqual([4, 2, 5]);
    expect(rnn.toString()).toContain('RNN(3, 5, numLayers=2, batchFirst=true, bidirectional=true)');
  });
});

describe('errors', () => {
  const oneLine = expectOneLineError;

  it('names the argument, the shape got and the shape expected', () => {
    const lstm = new LSTM(3, 4, { numLayers: 2 });
    oneLine(() => lstm.forward(randn([4, 2, 5])), /^LSTM\(3, 4\): input last dim is 5, expected inputSize 3 \(input shape \[4, 2, 5\]\)$/);
    oneLine(() => lstm.forward(randn([1, 4, 2, 3])), /^LSTM\(3, 4\): input must be 2-D .* or 3-D .*, got shape \[1, 4, 2, 3\]$/);
    oneLine(() => lstm.forward(randn([4, 2, 3]), [randn([1, 2, 4]), randn([2, 2, 4])]), /^LSTM\(3, 4\): h0 has shape \[1, 2, 4\], expected \[2, 2, 4\]/);
    oneLine(() => lstm.forward(randn([4, 2, 3]), [randn([2, 2, 4]), randn([2, 3, 4])]), /^LSTM\(3, 4\): c0 has shape \[2, 3, 4\], expected \[2, 2, 4\]/);
    oneLine(() => lstm.forward(randn([4, 3]), [randn([2, 1, 4]), randn([2, 1, 4])]), /^LSTM\(3, 4\): h0 has shape \[2, 1, 4\], expected \[2, 4\]/);
    oneLine(() => lstm.forward(randn([0, 2, 3])), /at least one time step/);
    oneLine(() => lstm.forward(randn([4, 2, 3]), [randn([2, 2, 4])] as unknown as [Tensor, Tensor]), /needs both h0 and c0|must be a pair/);
    const gru = new GRU(3, 4, { batchFirst: true, bidirectional: true });
    oneLine(() => gru.forward(randn([2, 5, 3]), randn([1, 2, 4])), /^GRU\(3, 4\): h0 has shape \[1, 2, 4\], expected \[2, 2, 4\]/);
    const cell = new GRUCell(3, 4);
    oneLine(() => cell.forward(randn([2, 4])), /^GRUCell\(3, 4\): input last dim is 4, expected inputSize 3/);
    oneLine(() => cell.forward(randn([2, 3]), randn([3, 4])), /^GRUCell\(3, 4\): h has shape \[3, 4\], expected \[2, 4\]$/);
    oneLine(() => new LSTMCell(3, 4).forward(randn([2, 3]), [randn([2, 4]), randn([2, 5])]), /^LSTMCell\(3, 4\): c has shape \[2, 5\], expected \[2, 4\]$/);
  });

  it('rejects bad constructor arguments', () => {
    oneLine(() => new RNN(3, 0), /^RNN: hiddenSize must be a positive integer, got 0$/);
    oneLine(() => new LSTM(2.5, 4), /^LSTM: inputSize must be a positive integer, got 2.5$/);
    oneLine(() => new GRU(3, 4, { numLayers: 0 }), /^GRU: numLayers must be a positive integer, got 0$/);
    oneLine(() => new GRU(3, 4, { dropout: 1.5 }), /^GRU: dropout must be a probability in \[0, 1\], got 1.5$/);
    oneLine(() => new RNN(3, 4, { nonlinearity: 'gelu' as 'tanh' }), /^RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'$/);
    oneLine(() => new RNNCell(3, 4, { nonlinearity: 'sigmoid' as 'tanh' }), /^RNNCell: nonlinearity must be/);
  });
});
