/** Module registration, modes, state dicts, layers and their error messages. */
import { describe, expect, it } from 'vitest';
import { F, Generator, nn, randn, tensor, zeros, type Tensor } from '../../src/index.js';

const { Module, Linear, Sequential, ModuleList, ReLU, GELU, Dropout, MLP, Identity, parameter } = nn;

class Block extends Module {
  fc: InstanceType<typeof Linear>;
  act = new ReLU();
  constructor(width: number, generator?: Generator) {
    super();
    this.fc = new Linear(width, width, { generator });
  }
  forward(x: Tensor): Tensor {
    return this.act.forward(this.fc.forward(x));
  }
}

class Net extends Module {
  scale = parameter(zeros([3]).add(1));
  notAParam = zeros([3]); // a plain tensor field: ignored
  layers: InstanceType<typeof ModuleList<Block>>;
  head: InstanceType<typeof Linear>;
  constructor(generator?: Generator) {
    super();
    this.layers = new ModuleList([new Block(3, generator), new Block(3, generator)]);
    this.head = new Linear(3, 2, { bias: false, generator });
    this.registerBuffer('steps', zeros([1]));
    this.registerBuffer('scratch', zeros([2]), { persistent: false });
  }
  forward(x: Tensor): Tensor {
    let h = x.mul(this.scale);
    for (const block of this.layers) h = block.forward(h);
    return this.head.forward(h);
  }
}

describe('Module registration', () => {
  it('discovers parameters and children in field order with dotted names', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual([
      'scale',
      'layers.0.fc.weight',
      'layers.0.fc.bias',
      'layers.1.fc.weight',
      'layers.1.fc.bias',
      'head.weight',
    ]);
    expect(net.parameters()).toHaveLength(6);
    expect(net.parameters()[1]).toBe(net.layers.at(0).fc.weight);
    expect(net.namedChildren().map(([n]) => n)).toEqual(['layers', 'head']);
    expect(net.children()).toEqual([net.layers, net.head]);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', 'layers', 'layers.0', 'layers.0.fc', 'layers.0.act', 'layers.1', 'layers.1.fc', 'layers.1.act', 'head']);
    expect(net.modules()[0]).toBe(net);
    expect(net.numParameters()).toBe(3 + 2 * (9 + 3) + 6);
  });

  it('Sequential names children 0, 1, … and runs them in order', () => {
    const seq = new Sequential(new Linear(4, 3), new ReLU(), new Linear(3, 2));
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(seq.length).toBe(3);
    const x = randn([5, 4]);
    const manual = (seq.at(2) as InstanceType<typeof Linear>).forward(F.relu((seq.at(0) as InstanceType<typeof Linear>).forward(x)));
    expect(seq.forward(x).toArray()).toEqual(manual.toArray());
  });

  it('a leaf tensor requiring grad is a parameter; buffers are state but not parameters', () => {
    class M extends Module {
      w = randn([2], { requiresGrad: true });
      constructor() {
        super();
        this.registerBuffer('mask', zeros([2]));
      }
      forward(x: Tensor): Tensor {
        return x.mul(this.w);
      }
    }
    const m = new M();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['w']);
    expect(m.namedBuffers().map(([n]) => n)).toEqual(['mask']);
    expect(Object.keys(m.stateDict())).toEqual(['w', 'mask']);
    const net = new Net();
    expect(Object.keys(net.stateDict())).toEqual([
      'scale',
      'steps',
      'layers.0.fc.weight',
      'layers.0.fc.bias',
      'layers.1.fc.weight',
      'layers.1.fc.bias',
      'head.weight',
    ]);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['steps', 'scratch']);
  });

  it('registerParameter / registerModule assign fields; null fields are skipped', () => {
    class M extends Module {
      constructor() {
        super();
        this.registerParameter('alpha', zeros([2]));
        this.registerParameter('beta', null);
        this.registerModule('inner', new Linear(2, 2, { bias: false }));
      }
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    const m = new M();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['alpha', 'inner.weight']);
    expect(m.parameters()[0].requiresGrad).toBe(true);
    expect(() => m.registerParameter('a.b', zeros([1]))).toThrow(/without '\.'/);
  });

  it('a shared (tied) parameter is listed once but saved under each name', () => {
    const a = new Linear(3, 3, { bias: false });
    const b = new Linear(3, 3, { bias: false });
    b.weight = a.weight;
    const seq = new Sequential(a, b);
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight']);
    expect(seq.numParameters()).toBe(9);
    expect(Object.keys(seq.stateDict())).toEqual(['0.weight', '1.weight']);
  });

  it('rejects a plain array of modules with a pointer to ModuleList', () => {
    class Bad extends Module {
      blocks = [new Linear(2, 2)];
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    expect(() => new Bad().parameters()).toThrow("Bad: field 'blocks' is a plain array of modules, whose parameters would not be registered; use new ModuleList([...]) instead");
  });

  it('a frozen parameter stays a parameter and in stateDict', () => {
    const lin = new Linear(2, 3);
    lin.requiresGrad_(false);
    expect(lin.parameters()).toHaveLength(2);
    expect(lin.numParameters({ trainable: true })).toBe(0);
    expect(Object.keys(lin.stateDict())).toEqual(['weight', 'bias']);
    lin.requiresGrad_(true);
    expect(lin.numParameters({ trainable: true })).toBe(9);
  });

  it('apply visits children before their parent', () => {
    const net = new Sequential(new Linear(2, 2), new Sequential(new ReLU(), new Identity()));
    const seen: string[] = [];
    net.apply((m) => seen.push(m.constructor.name));
    expect(seen).toEqual(['Linear', 'ReLU', 'Identity', 'Sequential', 'Sequential']);
  });

  it('a child holding a reference to its parent does not loop', () => {
    class Child extends Module {
      owner: InstanceType<typeof Module> | null = null;
      fc = new Linear(2, 2);
      forward(x: Tensor): Tensor {
        return this.fc.forward(x);
      }
    }
    class Parent extends Module {
      child = new Child();
      constructor() {
        super();
        this.child.owner = this;
      }
      forward(x: Tensor): Tensor {
        return this.child.forward(x);
      }
    }
    const p = new Parent();
    expect(p.namedParameters().map(([n]) => n)).toEqual(['child.fc.weight', 'child.fc.bias']);
    expect(p.modules()).toHaveLength(3);
    let visits = 0;
    p.apply(() => visits++);
    expect(visits).toBe(3);
    expect(p.eval().child.fc.training).toBe(false);
    expect(p.toString()).toContain('(owner): Parent(<cycle>)');
    expect(() => p.stateDict()).toThrow(/module cycle/);
  });

  it('zeroGrad sets every gradient to null', () => {
    const net = new Net();
    net.forward(randn([4, 3])).sum().backward();
    expect(net.parameters().every((p) => p.grad !== null)).toBe(true);
    net.zeroGrad();
    expect(net.parameters().every((p) => p.grad === null)).toBe(true);
  });

  it('toString prints the tree like PyTorch', () => {
    expect(new Linear(3, 5).toString()).toBe('Linear(inFeatures=3, outFeatures=5, bias=true)');
    const mlp = new MLP([3, 4, 2], { activation: 'gelu' });
    expect(String(mlp)).toBe(
      ['MLP(', '  (0): Linear(inFeatures=3, outFeatures=4, bias=true)', "  (1): GELU(approximate='none')", '  (2): Linear(inFeatures=4, outFeatures=2, bias=true)', ')'].join('\n'),
    );
    expect(new Net().toString()).toBe(
      [
        'Net(',
        '  (layers): ModuleList(',
        '    (0): Block(',
        '      (fc): Linear(inFeatures=3, outFeatures=3, bias=true)',
        '      (act): ReLU()',
        '    )',
        '    (1): Block(',
        '      (fc): Linear(inFeatures=3, outFeatures=3, bias=true)',
        '      (act): ReLU()',
        '    )',
        '  )',
        '  (head): Linear(inFeatures=3, outFeatures=2, bias=false)',
        ')',
      ].join('\n'),
    );
  });
});

describe('train / eval and Dropout', () => {
  it('train(mode) and eval() reach every descendant', () => {
    const net = new Net();
    expect(net.modules().every((m) => m.training)).toBe(true);
    expect(net.eval()).toBe(net);
    expect(net.modules().every((m) => !m.training)).toBe(true);
    net.train();
    expect(net.modules().every((m) => m.training)).toBe(true);
    net.train(false);
    expect(net.layers.at(1).act.training).toBe(false);
  });

  it('Dropout drops and rescales in training, is the identity in eval', () => {
    const drop = new Dropout(0.25, { generator: new Generator(3) });
    const x = randn([40, 50]);
    const y = drop.forward(x);
    const xs = x.toArray();
    const ys = y.toArray();
    let zeros = 0;
    for (let i = 0; i < xs.length; i++) {
      if (ys[i] === 0) zeros++;
      else expect(ys[i]).toBeCloseTo(xs[i] / 0.75, 5);
    }
    expect(zeros / xs.length).toBeGreaterThan(0.2);
    expect(zeros / xs.length).toBeLessThan(0.3);
    drop.eval();
    expect(drop.forward(x)).toBe(x);
  });

  it('Dropout is deterministic for a seed, and follows the model mode', () => {
    const x = randn([8, 8]);
    const a = new Dropout(0.5, { generator: new Generator(11) }).forward(x).toArray();
    const b = new Dropout(0.5, { generator: new Generator(11) }).forward(x).toArray();
    const c = new Dropout(0.5, { generator: new Generator(12) }).forward(x).toArray();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(F.dropout(x, 0.5, true, new Generator(11)).toArray()).toEqual(a);
    const model = new Sequential(new Linear(8, 8), new Dropout(0.5)).eval();
    const y1 = model.forward(x).toArray();
    expect(model.forward(x).toArray()).toEqual(y1);
  });

  it('F.dropout validates p and handles p = 0 and p = 1', () => {
    const x = randn([3, 3]);
    expect(() => F.dropout(x, 1.5)).toThrow('dropout: probability has to be between 0 and 1, but got 1.5');
    expect(() => F.dropout(x, -0.1)).toThrow(/between 0 and 1/);
    expect(() => new Dropout(2)).toThrow(/between 0 and 1/);
    expect(F.dropout(x, 0)).toBe(x);
    expect(F.dropout(x, 1).toArray().every((v) => v === 0)).toBe(true);
    expect(F.dropout(x, 0.5, false)).toBe(x);
  });
});

describe('stateDict / loadStateDict', () => {
  it('round trip into a fresh model gives identical outputs, copying in place', () => {
    const a = new MLP([3, 8, 8, 2], { generator: new Generator(1) });
    const b = new MLP([3, 8, 8, 2], { generator: new Generator(2) });
    const x = randn([5, 3]);
    expect(b.forward(x).toArray()).not.toEqual(a.forward(x).toArray());
    const state = a.stateDict();
    expect(Object.keys(state)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
    expect(Object.values(state).every((t) => !t.requiresGrad)).toBe(true);
    const before = b.parameters();
    expect(b.loadStateDict(state)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.parameters()).toEqual(before);
    expect(b.parameters().every((p, i) => p === before[i] && p.requiresGrad)).toBe(true);
    expect(b.forward(x).toArray()).toEqual(a.forward(x).toArray());
    // b got a copy: the state dict shares a's storage, not b's
    (state['0.weight'].storage as Float32Array)[0] += 1;
    expect(b.stateDict()['0.weight'].toArray()[0]).not.toBe(state['0.weight'].toArray()[0]);
  });

  it('buffers are saved and loaded', () => {
    const a = new Net(new Generator(5));
    (a.stateDict().steps.storage as Float32Array)[0] = 42;
    const b = new Net(new Generator(6));
    b.loadStateDict(a.stateDict());
    expect(b.stateDict().steps.toArray()).toEqual([42]);
    const x = randn([2, 3]);
    expect(b.forward(x).toArray()).toEqual(a.forward(x).toArray());
  });

  it('names a missing key', () => {
    const net = new MLP([3, 4, 2]);
    const state = net.stateDict();
    delete state['2.bias'];
    expect(() => net.loadStateDict(state)).toThrow('loadStateDict: missing key(s) in state dict: "2.bias"');
    expect(net.loadStateDict(state, { strict: false })).toEqual({ missingKeys: ['2.bias'], unexpectedKeys: [] });
  });

  it('names an unexpected key', () => {
    const net = new MLP([3, 4, 2]);
    const state = { ...net.stateDict(), 'extra.weight': zeros([1]) };
    expect(() => net.loadStateDict(state)).toThrow('loadStateDict: unexpected key(s) in state dict: "extra.weight"');
    expect(net.loadStateDict(state, { strict: false })).toEqual({ missingKeys: [], unexpectedKeys: ['extra.weight'] });
  });

  it('keeps the message short however many keys are wrong', () => {
    const net = new MLP([3, 4, 2]);
    const state: Record<string, ReturnType<typeof zeros>> = { ...net.stateDict() };
    for (let i = 0; i < 50_000; i++) state[`extra.${'x'.repeat(100)}.${i}`] = zeros([1]);
    let message = '';
    try {
      net.loadStateDict(state);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^loadStateDict: unexpected key\(s\) in state dict: "extra\.x+…", .*, "extra\.x+…" … and 49997 more$/);
    expect(message.length).toBeLessThan(300);
  });

  it('names the key and both shapes on a size mismatch, and leaves the model untouched', () => {
    class TwoLayer extends Module {
      fc1: InstanceType<typeof Linear>;
      fc2: InstanceType<typeof Linear>;
      constructor(hidden: number) {
        super();
        this.fc1 = new Linear(3, hidden);
        this.fc2 = new Linear(hidden, 1);
      }
      forward(x: Tensor): Tensor {
        return this.fc2.forward(this.fc1.forward(x).relu());
      }
    }
    const small = new TwoLayer(4);
    const big = new TwoLayer(5);
    const before = big.stateDict()['fc1.bias'].toArray();
    expect(() => big.loadStateDict(small.stateDict())).toThrow(
      'loadStateDict: size mismatch for fc1.weight: copying a param with shape [4, 3], the shape in current model is [5, 3]',
    );
    expect(() => big.loadStateDict(small.stateDict(), { strict: false })).toThrow(/size mismatch for fc2\.weight: copying a param with shape \[1, 4\], the shape in current model is \[1, 5\]/);
    expect(big.stateDict()['fc1.bias'].toArray()).toEqual(before);
  });
});

describe('Linear, MLP and functional errors', () => {
  it('Linear reports a wrong input size exactly', () => {
    expect(() => new Linear(256, 128).forward(randn([2, 64]))).toThrow(new Error('Linear(256, 128): input last dim is 64, expected 256'));
    expect(() => F.linear(randn([2, 64]), zeros([128, 256]))).toThrow(new Error('linear: input last dim is 64, expected 256 (weight shape [128, 256])'));
    expect(() => F.linear(randn([2, 3]), zeros([4, 3]), zeros([5]))).toThrow('linear: bias must have shape [4] to match weight shape [4, 3], got [5]');
  });

  it('Linear init: weight [out, in] and bias within ±1/√in, deterministic for a generator', () => {
    const lin = new Linear(256, 128, { generator: new Generator(0) });
    expect(lin.weight.shape).toEqual([128, 256]);
    expect(lin.bias?.shape).toEqual([128]);
    const bound = 1 / Math.sqrt(256);
    const w = lin.weight.toArray();
    const b = (lin.bias as Tensor).toArray();
    expect(w.every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(b.every((v) => Math.abs(v) <= bound)).toBe(true);
    // uniform over the whole range, not a narrower one
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.99 * bound);
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    expect(Math.abs(mean)).toBeLessThan(0.05 * bound);
    expect(new Linear(256, 128, { generator: new Generator(0) }).weight.toArray()).toEqual(w);
    expect(new Linear(3, 2, { bias: false }).bias).toBeNull();
    expect(lin.weight.requiresGrad && nn.isParameter(lin.weight)).toBe(true);
  });

  it('MLP builds Linear + activation layers with no activation after the last', () => {
    const mlp = new MLP([4, 16, 8, 3], { activation: 'tanh', dropout: 0.1, generator: new Generator(4) });
    expect(mlp.children().map((m) => m.constructor.name)).toEqual(['Linear', 'Tanh', 'Dropout', 'Linear', 'Tanh', 'Dropout', 'Linear']);
    expect(mlp.forward(randn([5, 4])).shape).toEqual([5, 3]);
    expect(mlp.forward(randn([2, 5, 4])).shape).toEqual([2, 5, 3]);
    expect(mlp.numParameters()).toBe(4 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3);
    expect(new MLP([2, 3], { bias: false }).namedParameters().map(([n]) => n)).toEqual(['0.weight']);
    expect(() => new MLP([4])).toThrow(/at least \[in, out\]/);
  });

  it('activation modules match their functional forms', () => {
    const x = randn([3, 4]);
    expect(new GELU({ approximate: 'tanh' }).forward(x).toArray()).toEqual(F.gelu(x, { approximate: 'tanh' }).toArray());
    expect(new nn.SiLU().forward(x).toArray()).toEqual(F.silu(x).toArray());
    expect(nn.Swish).toBe(nn.SiLU);
    expect(new nn.Sigmoid().forward(x).toArray()).toEqual(F.sigmoid(x).toArray());
    expect(new nn.Tanh().forward(x).toArray()).toEqual(F.tanh(x).toArray());
    expect(new nn.Softmax(0).forward(x).toArray()).toEqual(F.softmax(x, 0).toArray());
    expect(new Identity().forward(x)).toBe(x);
  });

  it('loss modules match their functional forms', () => {
    const logits = randn([4, 5]);
    const target = tensor([0, 4, 2, 1], { dtype: 'int32' });
    expect(new nn.CrossEntropyLoss({ labelSmoothing: 0.1 }).forward(logits, target).item()).toBe(F.crossEntropy(logits, target, { labelSmoothing: 0.1 }).item());
    const y = randn([4, 5]);
    expect(new nn.MSELoss({ reduction: 'sum' }).forward(logits, y).item()).toBe(F.mseLoss(logits, y, { reduction: 'sum' }).item());
  });

  it('crossEntropy rejects out-of-range targets, wrong shapes and bad options', () => {
    const logits = randn([3, 7]);
    expect(() => F.crossEntropy(logits, tensor([0, 9, 1], { dtype: 'int32' }))).toThrow(new RangeError('crossEntropy: target 9 is out of bounds for 7 classes'));
    expect(() => F.crossEntropy(logits, tensor([0, -1, 1], { dtype: 'int32' }))).toThrow('crossEntropy: target -1 is out of bounds for 7 classes');
    expect(() => F.crossEntropy(logits, tensor([0, -1, 1], { dtype: 'int32' }), { ignoreIndex: -1 })).not.toThrow();
    expect(() => F.crossEntropy(logits, tensor([0, 1], { dtype: 'int32' }))).toThrow(
      'crossEntropy: logits shape [3, 7] (classes last) expects target shape [3], got target shape [2]',
    );
    expect(() => F.crossEntropy(logits, tensor([0, 1, 2]))).toThrow('crossEntropy: target must be an int32 tensor of class indices, got float32');
    expect(() => F.crossEntropy(logits, tensor([0, 1, 2], { dtype: 'int32' }), { reduction: 'avg' as 'mean' })).toThrow(
      "crossEntropy: reduction must be 'mean', 'sum' or 'none', got 'avg'",
    );
    expect(() => F.crossEntropy(logits, tensor([0, 1, 2], { dtype: 'int32' }), { labelSmoothing: 1.5 })).toThrow(/labelSmoothing must be in \[0, 1\]/);
    expect(() => F.nllLoss(logits, tensor([0, 7, 1], { dtype: 'int32' }))).toThrow('nllLoss: target 7 is out of bounds for 7 classes');
  });

  it('other losses name both shapes and validate inputs', () => {
    expect(() => F.mseLoss(randn([3, 4]), randn([4, 3]))).toThrow('mseLoss: input shape [3, 4] and target shape [4, 3] must be equal');
    expect(() => F.binaryCrossEntropyWithLogits(randn([2]), randn([3]))).toThrow('binaryCrossEntropyWithLogits: logits shape [2] and target shape [3] must be equal');
    expect(() => F.binaryCrossEntropy(tensor([0.5, 1.5]), tensor([0, 1]))).toThrow('binaryCrossEntropy: all elements of input should be between 0 and 1, got 1.5');
    expect(() => F.mseLoss(randn([2]), randn([2]), { reduction: 'MEAN' as 'mean' })).toThrow("mseLoss: reduction must be 'mean', 'sum' or 'none', got 'MEAN'");
  });

  it('crossEntropy: mean over non-ignored targets, and class-last [B, T, C] equals the flattened [N, C]', () => {
    const logits = randn([2, 3, 4]);
    const target = tensor(
      [
        [0, -100, 3],
        [2, 1, -100],
      ],
      { dtype: 'int32' },
    );
    const flat = F.crossEntropy(logits.reshape(6, 4), target.reshape(6), { reduction: 'sum' }).item();
    expect(F.crossEntropy(logits, target, { reduction: 'sum' }).item()).toBeCloseTo(flat, 5);
    expect(F.crossEntropy(logits, target).item()).toBeCloseTo(flat / 4, 5);
    const none = F.crossEntropy(logits, target, { reduction: 'none' });
    expect(none.shape).toEqual([2, 3]);
    expect(none.toArray()[1]).toBe(0);
    // a transposed (non-contiguous) logits view gives the same answer as its contiguous copy
    const lt = randn([4, 6]).transpose(0, 1);
    const t6 = tensor([0, 1, 2, 3, 0, 1], { dtype: 'int32' });
    expect(F.crossEntropy(lt, t6).item()).toBeCloseTo(F.crossEntropy(lt.contiguous(), t6).item(), 6);
  });
});
