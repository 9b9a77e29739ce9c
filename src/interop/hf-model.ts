/**
 * TransformerLM ⇄ Hugging Face model folders: the config.json of `LlamaForCausalLM` and
 * `GPT2LMHeadModel`, and the state-dict names and layouts of their safetensors.
 *
 *   Llama (RMSNorm, SwiGLU, RoPE, no biases):  model.embed_tokens, model.layers.{i}.self_attn.{q,k,v,o}_proj,
 *     model.layers.{i}.mlp.{gate,up,down}_proj, model.layers.{i}.{input,post_attention}_layernorm,
 *     model.norm, lm_head (untied only). Weights are [out, in] like TensorLM's. q/k rows are in HF's
 *     rotate-half order, TensorLM's 'half' pairing; an 'interleaved' model's q/k rows are permuted.
 *   GPT-2 (LayerNorm, GELU, learned positions, biases, tied head):  transformer.wte, transformer.wpe,
 *     transformer.h.{i}.ln_1, .attn.c_attn (q, k, v fused), .attn.c_proj, .ln_2, .mlp.c_fc,
 *     .mlp.c_proj, transformer.ln_f. Its Conv1D layers store weights as [in, out]: transposed.
 *
 * A config neither architecture can express (e.g. μP multipliers, post-norm, GQA in GPT-2) is
 * refused with the list of what does not fit.
 */
import { cat } from '../ops/indexing.js';
import { layerKinds, layerWindows, resolveConfig, type TransformerConfig } from '../models/config.js';
import type { RopePairing } from '../ops/rotary.js';
import type { Tensor } from '../tensor/tensor.js';

export type HfArchitecture = 'LlamaForCausalLM' | 'GPT2LMHeadModel';

/** Special token ids a config.json and generation_config.json name. */
export interface HfSpecialIds {
  bos: number | null;
  eos: number | null;
}

function llamaMismatches(c: TransformerConfig): string[] {
  const out: string[] = [];
  if (c.norm !== 'rms') out.push(`norm '${c.norm}' (Llama uses 'rms')`);
  if (c.mlp !== 'swiglu') out.push(`mlp '${c.mlp}' (Llama uses 'swiglu')`);
  if (c.pos !== 'rope') out.push(`pos '${c.pos}' (Llama uses 'rope')`);
  if (c.bias) out.push('bias true (Llama has no biases)');
  return out;
}

function gpt2Mismatches(c: TransformerConfig): string[] {
  const out: string[] = [];
  if (c.norm !== 'layer') out.push(`norm '${c.norm}' (GPT-2 uses 'layer')`);
  if (c.mlp !== 'gelu') out.push(`mlp '${c.mlp}' (GPT-2 uses 'gelu')`);
  if (c.pos !== 'learned') out.push(`pos '${c.pos}' (GPT-2 uses 'learned')`);
  if (!c.bias) out.push('bias false (GPT-2 has biases)');
  if (!c.tieWeights) out.push('tieWeights false (GPT-2 ties its head to the embedding)');
  if (c.nKvHeads !== c.nHeads) out.push(`nKvHeads ${c.nKvHeads} ≠ nHeads ${c.nHeads} (GPT-2 has no grouped-query attention)`);
  return out;
}

/**
 * The Hugging Face architecture that computes exactly what `config` does, or a one-line error
 * naming what neither can express.
 */
export function hfArchitecture(config: TransformerConfig): HfArchitecture {
  const common: string[] = [];
  if (config.mup) common.push('μP (its multipliers have no Hugging Face config field; train without mup to export)');
  if (config.normPlacement !== 'pre') common.push(`normPlacement '${config.normPlacement}' (both are pre-norm)`);
  // A window as long as the context hides nothing; a shorter one is Mistral's sliding_window,
  // which neither architecture has (Llama would silently attend to everything).
  if (layerWindows(config).some((w) => w !== null && w < config.maxSeqLen)) {
    common.push(`slidingWindow ${JSON.stringify(config.slidingWindow)} (neither has sliding-window attention; MistralForCausalLM's sliding_window is not written yet)`);
  }
  if (config.attention === 'linear') common.push(`attention 'linear' (neither has linear attention; the weights would be read as softmax attention)`);
  if (config.moe) common.push(`moe (${config.moe.nExperts} experts: neither has a mixture of experts; MixtralForCausalLM is not written yet)`);
  if (config.mla) common.push(`mla (neither has multi-head latent attention; DeepseekV2ForCausalLM is not written yet)`);
  if (layerKinds(config).includes('mamba')) common.push(`'mamba' layers (neither has a selective state-space layer; MambaForCausalLM is not written yet)`);
  const llama = llamaMismatches(config);
  const gpt2 = gpt2Mismatches(config);
  if (common.length === 0 && llama.length === 0) return 'LlamaForCausalLM';
  if (common.length === 0 && gpt2.length === 0) return 'GPT2LMHeadModel';
  const nearer = llama.length <= gpt2.length ? ['LlamaForCausalLM', llama] : ['GPT2LMHeadModel', gpt2];
  throw new Error(`this model cannot be written as LlamaForCausalLM or GPT2LMHeadModel: ${[...common, ...(nearer[1] as string[])].join('; ')} — the nearer one is ${nearer[0] as string}`);
}

/** config.json for the architecture (the fields transformers reads; float32 weights). */
export function hfConfigJson(config: TransformerConfig, arch: HfArchitecture, ids: HfSpecialIds): Record<string, unknown> {
  const c = config;
  const tokens = { bos_token_id: ids.bos, eos_token_id: ids.eos };
  if (arch === 'LlamaForCausalLM') {
    return {
      architectures: [arch],
      model_type: 'llama',
      vocab_size: c.vocabSize,
      hidden_size: c.dModel,
      intermediate_size: c.dFF,
      num_hidden_layers: c.nLayers,
      num_attention_heads: c.nHeads,
      num_key_value_heads: c.nKvHeads,
      head_dim: c.dModel / c.nHeads,
      max_position_embeddings: c.maxSeqLen,
      rms_norm_eps: c.normEps,
      rope_theta: c.ropeTheta,
      rope_scaling: null,
      hidden_act: 'silu',
      attention_bias: false,
      mlp_bias: false,
      attention_dropout: 0,
      tie_word_embeddings: c.tieWeights,
      initializer_range: c.initStd,
      torch_dtype: 'float32',
      ...tokens,
    };
  }
  return {
    architectures: [arch],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.maxSeqLen,
    n_embd: c.dModel,
    n_layer: c.nLayers,
    n_head: c.nHeads,
    n_inner: c.dFF,
    // TensorLM's 'gelu' is the exact erf GELU, which transformers calls "gelu" (GPT-2's own is "gelu_new").
    activation_function: 'gelu',
    layer_norm_epsilon: c.normEps,
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    initializer_range: c.initStd,
    torch_dtype: 'float32',
    ...tokens,
  };
}

function field(json: Record<string, unknown>, key: string, what: string, required = true): number | undefined {
  const v = json[key];
  if (v === undefined || v === null) {
    if (required) throw new Error(`${what}: '${key}' is missing`);
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what}: '${key}' must be a number, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

/** The architecture a config.json declares (architectures[0], or model_type), or a one-line error. */
export function hfArchitectureOf(json: Record<string, unknown>, what: string): HfArchitecture {
  const listed = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  if (listed === 'LlamaForCausalLM' || (listed === undefined && json.model_type === 'llama')) return 'LlamaForCausalLM';
  if (listed === 'GPT2LMHeadModel' || (listed === undefined && json.model_type === 'gpt2')) return 'GPT2LMHeadModel';
  throw new Error(`${what}: unsupported architecture ${JSON.stringify(listed ?? json.model_type ?? null)?.slice(0, 60)} (TensorLM reads LlamaForCausalLM and GPT2LMHeadModel)`);
}

/** The TransformerConfig of a Hugging Face config.json. */
export function configFromHf(json: Record<string, unknown>, what: string): { arch: HfArchitecture; config: TransformerConfig } {
  const arch = hfArchitectureOf(json, what);
  const num = (key: string, required = true) => field(json, key, what, required);
  if (arch === 'LlamaForCausalLM') {
    if (json.rope_scaling !== undefined && json.rope_scaling !== null) throw new Error(`${what}: rope_scaling ${JSON.stringify(json.rope_scaling).slice(0, 60)} is not supported (plain RoPE only)`);
    if (json.attention_bias === true || json.mlp_bias === true) throw new Error(`${what}: attention_bias / mlp_bias are not supported (Llama without biases only)`);
    if (json.hidden_act !== undefined && json.hidden_act !== 'silu') throw new Error(`${what}: hidden_act '${String(json.hidden_act)}' is not supported (SwiGLU's silu only)`);
    const dModel = num('hidden_size') as number;
    const nHeads = num('num_attention_heads') as number;
    const headDim = num('head_dim', false);
    if (headDim !== undefined && headDim * nHeads !== dModel) throw new Error(`${what}: head_dim ${headDim} × num_attention_heads ${nHeads} ≠ hidden_size ${dModel} (not supported)`);
    const config = resolveConfig({
      vocabSize: num('vocab_size') as number,
      dModel,
      nLayers: num('num_hidden_layers') as number,
      nHeads,
      nKvHeads: num('num_key_value_heads', false) ?? nHeads,
      dFF: num('intermediate_size') as number,
      maxSeqLen: num('max_position_embeddings') as number,
      norm: 'rms',
      normEps: num('rms_norm_eps', false) ?? 1e-6,
      mlp: 'swiglu',
      pos: 'rope',
      ropeTheta: num('rope_theta', false) ?? 10000,
      ropePairing: 'half',
      tieWeights: json.tie_word_embeddings === true,
      bias: false,
      dropout: 0,
      initStd: num('initializer_range', false) ?? 0.02,
    });
    return { arch, config };
  }
  const activation = json.activation_function ?? 'gelu_new';
  if (activation !== 'gelu') {
    throw new Error(`${what}: activation_function '${String(activation)}' is not supported (TensorLM's GPT-2 layout uses the exact GELU, "gelu"; GPT-2's own "gelu_new" is the tanh approximation)`);
  }
  if (json.tie_word_embeddings === false) throw new Error(`${what}: an untied GPT-2 head (tie_word_embeddings false) is not supported`);
  const dModel = num('n_embd') as number;
  const config = resolveConfig({
    vocabSize: num('vocab_size') as number,
    dModel,
    nLayers: num('n_layer') as number,
    nHeads: num('n_head') as number,
    dFF: num('n_inner', false) ?? 4 * dModel,
    maxSeqLen: num('n_positions') as number,
    norm: 'layer',
    normEps: num('layer_norm_epsilon', false) ?? 1e-5,
    mlp: 'gelu',
    pos: 'learned',
    tieWeights: true,
    bias: true,
    dropout: 0,
    initStd: num('initializer_range', false) ?? 0.02,
  });
  return { arch, config };
}

/**
 * Rows of a q or k projection from one RoPE pairing to the other, per head of `headDim`:
 * to 'half' takes interleaved pairs (2i, 2i+1) to (i, i + D/2) (Hugging Face's rotate-half order);
 * to 'interleaved' is the inverse (llama.cpp's adjacent pairs, as convert_hf_to_gguf.py permutes).
 */
export function permuteRopeRows(w: Tensor, heads: number, headDim: number, to: RopePairing): Tensor {
  const rest = w.shape.slice(1);
  // View each head's rows in the source order's grouping, swap the two axes, read them out flat.
  const split = to === 'half' ? [headDim / 2, 2] : [2, headDim / 2];
  return w.reshape([heads, ...split, ...rest]).transpose(1, 2).contiguous().reshape(w.shape);
}

/** TensorLM state dict → Hugging Face tensors (names and layouts of `arch`); tied weights appear once. */
export function toHfTensors(state: Readonly<Record<string, Tensor>>, config: TransformerConfig, arch: HfArchitecture): Record<string, Tensor> {
  const c = config;
  const get = (name: string): Tensor => {
    const t = state[name];
    if (!t) throw new Error(`toHfTensors: the model has no '${name}'`);
    return t;
  };
  const out: Record<string, Tensor> = {};
  const headDim = c.dModel / c.nHeads;
  if (arch === 'LlamaForCausalLM') {
    const rope = (t: Tensor, heads: number) => (c.ropePairing === 'interleaved' ? permuteRopeRows(t, heads, headDim, 'half') : t);
    out['model.embed_tokens.weight'] = get('tokEmb.weight');
    for (let i = 0; i < c.nLayers; i++) {
      const p = `model.layers.${i}`;
      const l = `layers.${i}`;
      out[`${p}.self_attn.q_proj.weight`] = rope(get(`${l}.attn.wq.weight`), c.nHeads);
      out[`${p}.self_attn.k_proj.weight`] = rope(get(`${l}.attn.wk.weight`), c.nKvHeads);
      out[`${p}.self_attn.v_proj.weight`] = get(`${l}.attn.wv.weight`);
      out[`${p}.self_attn.o_proj.weight`] = get(`${l}.attn.wo.weight`);
      out[`${p}.mlp.gate_proj.weight`] = get(`${l}.ffn.w1.weight`);
      out[`${p}.mlp.up_proj.weight`] = get(`${l}.ffn.w3.weight`);
      out[`${p}.mlp.down_proj.weight`] = get(`${l}.ffn.w2.weight`);
      out[`${p}.input_layernorm.weight`] = get(`${l}.attnNorm.weight`);
      out[`${p}.post_attention_layernorm.weight`] = get(`${l}.ffnNorm.weight`);
    }
    out['model.norm.weight'] = get('norm.weight');
    if (!c.tieWeights) out['lm_head.weight'] = get('head.weight');
    return out;
  }
  const t = (x: Tensor) => x.transpose(0, 1).contiguous();
  out['transformer.wte.weight'] = get('tokEmb.weight');
  out['transformer.wpe.weight'] = get('posEmb.weight');
  for (let i = 0; i < c.nLayers; i++) {
    const p = `transformer.h.${i}`;
    const l = `layers.${i}`;
    out[`${p}.ln_1.weight`] = get(`${l}.attnNorm.weight`);
    out[`${p}.ln_1.bias`] = get(`${l}.attnNorm.bias`);
    out[`${p}.attn.c_attn.weight`] = t(cat([get(`${l}.attn.wq.weight`), get(`${l}.attn.wk.weight`), get(`${l}.attn.wv.weight`)], 0));
    out[`${p}.attn.c_attn.bias`] = cat([get(`${l}.attn.wq.bias`), get(`${l}.attn.wk.bias`), get(`${l}.attn.wv.bias`)], 0);
    out[`${p}.attn.c_proj.weight`] = t(get(`${l}.attn.wo.weight`));
    out[`${p}.attn.c_proj.bias`] = get(`${l}.attn.wo.bias`);
    out[`${p}.ln_2.weight`] = get(`${l}.ffnNorm.weight`);
    out[`${p}.ln_2.bias`] = get(`${l}.ffnNorm.bias`);
    out[`${p}.mlp.c_fc.weight`] = t(get(`${l}.ffn.w1.weight`));
    out[`${p}.mlp.c_fc.bias`] = get(`${l}.ffn.w1.bias`);
    out[`${p}.mlp.c_proj.weight`] = t(get(`${l}.ffn.w2.weight`));
    out[`${p}.mlp.c_proj.bias`] = get(`${l}.ffn.w2.bias`);
  }
  out['transformer.ln_f.weight'] = get('norm.weight');
  out['transformer.ln_f.bias'] = get('norm.bias');
  return out;
}

/** What a Hugging Face checkpoint may hold besides the weights (buffers transformers can rebuild). */
function ignoredHfTensor(name: string): boolean {
  return name.endsWith('rotary_emb.inv_freq') || /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(name);
}

/**
 * Hugging Face tensors → a TensorLM state dict for `config` (the inverse of toHfTensors). Every
 * tensor the model needs must be there with its shape; unknown names are an error, except buffers
 * transformers rebuilds (rotary inv_freq, GPT-2's attention masks) and a tied lm_head.
 */
export function fromHfTensors(tensors: ReadonlyMap<string, Tensor>, config: TransformerConfig, arch: HfArchitecture, what: string): Record<string, Tensor> {
  const c = config;
  const used = new Set<string>();
  const get = (name: string, shape: readonly number[]): Tensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${what}: tensor '${name}' is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new Error(`${what}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    used.add(name);
    return t;
  };
  const d = c.dModel;
  const headDim = d / c.nHeads;
  const kv = c.nKvHeads * headDim;
  const out: Record<string, Tensor> = {};
  if (arch === 'LlamaForCausalLM') {
    out['tokEmb.weight'] = get('model.embed_tokens.weight', [c.vocabSize, d]);
    for (let i = 0; i < c.nLayers; i++) {
      const p = `model.layers.${i}`;
      const l = `layers.${i}`;
      out[`${l}.attn.wq.weight`] = get(`${p}.self_attn.q_proj.weight`, [d, d]);
      out[`${l}.attn.wk.weight`] = get(`${p}.self_attn.k_proj.weight`, [kv, d]);
      out[`${l}.attn.wv.weight`] = get(`${p}.self_attn.v_proj.weight`, [kv, d]);
      out[`${l}.attn.wo.weight`] = get(`${p}.self_attn.o_proj.weight`, [d, d]);
      out[`${l}.ffn.w1.weight`] = get(`${p}.mlp.gate_proj.weight`, [c.dFF, d]);
      out[`${l}.ffn.w3.weight`] = get(`${p}.mlp.up_proj.weight`, [c.dFF, d]);
      out[`${l}.ffn.w2.weight`] = get(`${p}.mlp.down_proj.weight`, [d, c.dFF]);
      out[`${l}.attnNorm.weight`] = get(`${p}.input_layernorm.weight`, [d]);
      out[`${l}.ffnNorm.weight`] = get(`${p}.post_attention_layernorm.weight`, [d]);
    }
    out['norm.weight'] = get('model.norm.weight', [d]);
    if (!c.tieWeights) out['head.weight'] = get('lm_head.weight', [c.vocabSize, d]);
  } else {
    const t = (x: Tensor) => x.transpose(0, 1).contiguous();
    out['tokEmb.weight'] = get('transformer.wte.weight', [c.vocabSize, d]);
    out['posEmb.weight'] = get('transformer.wpe.weight', [c.maxSeqLen, d]);
    for (let i = 0; i < c.nLayers; i++) {
      const p = `transformer.h.${i}`;
      const l = `layers.${i}`;
      out[`${l}.attnNorm.weight`] = get(`${p}.ln_1.weight`, [d]);
      out[`${l}.attnNorm.bias`] = get(`${p}.ln_1.bias`, [d]);
      const qkv = t(get(`${p}.attn.c_attn.weight`, [d, 3 * d]));
      const qkvBias = get(`${p}.attn.c_attn.bias`, [3 * d]);
      ['wq', 'wk', 'wv'].forEach((w, k) => {
        out[`${l}.attn.${w}.weight`] = qkv.narrow(0, k * d, d).contiguous();
        out[`${l}.attn.${w}.bias`] = qkvBias.narrow(0, k * d, d).contiguous();
      });
      out[`${l}.attn.wo.weight`] = t(get(`${p}.attn.c_proj.weight`, [d, d]));
      out[`${l}.attn.wo.bias`] = get(`${p}.attn.c_proj.bias`, [d]);
      out[`${l}.ffnNorm.weight`] = get(`${p}.ln_2.weight`, [d]);
      out[`${l}.ffnNorm.bias`] = get(`${p}.ln_2.bias`, [d]);
      out[`${l}.ffn.w1.weight`] = t(get(`${p}.mlp.c_fc.weight`, [d, c.dFF]));
      out[`${l}.ffn.w1.bias`] = get(`${p}.mlp.c_fc.bias`, [c.dFF]);
      out[`${l}.ffn.w2.weight`] = t(get(`${p}.mlp.c_proj.weight`, [c.dFF, d]));
      out[`${l}.ffn.w2.bias`] = get(`${p}.mlp.c_proj.bias`, [d]);
    }
    out['norm.weight'] = get('transformer.ln_f.weight', [d]);
    out['norm.bias'] = get('transformer.ln_f.bias', [d]);
    if (tensors.has('lm_head.weight')) get('lm_head.weight', [c.vocabSize, d]);
  }
  if (c.tieWeights && arch === 'LlamaForCausalLM' && tensors.has('lm_head.weight')) get('lm_head.weight', [c.vocabSize, d]);
  const unknown = [...tensors.keys()].filter((n) => !used.has(n) && !ignoredHfTensor(n));
  if (unknown.length > 0) throw new Error(`${what}: ${unknown.length} tensor${unknown.length === 1 ? '' : 's'} the ${arch} layout does not have, e.g. '${unknown[0]}'`);
  return out;
}
