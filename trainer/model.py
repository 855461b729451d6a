"""The Qwen3-MoE decoder the trainer trains, written so its weights export to transformers.

What it is for: training on packed sequences (document masking, per-document positions),
returning router logits for the load-balancing loss, and, given labels, the summed token
cross-entropy from a loss head that never hands fp32 logits back (`forward(..., labels_BT=...)`).
`compile_for_training()` compiles each layer's dense part and the loss head with torch.compile;
the expert computation stays outside the graphs (it is `kernels.moe`'s own fused kernels).
What it is not for: inference with a KV cache; exported weights run in
`transformers.Qwen3MoeForCausalLM` for that (`trainer.export`).

Parameter names and layouts follow transformers' Qwen3Moe modules (`model.layers.N.mlp.gate`,
`mlp.experts.gate_up_proj (E, 2I, D)`, `mlp.experts.down_proj (E, D, I)`), so export is a rename.
The expert computation goes through `kernels.moe` (impl "torch" | "triton" | "auto").

Shape legend:
    B batch, T sequence (tokens), D hidden, H query heads, K key/value heads, A head dim,
    E experts, I expert intermediate width, V vocabulary, L layers, N = B*T flattened tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig
from trainer.packing import IGNORE

__all__ = ["MoEDecoder", "ModelOutput", "doc_mask", "load_balancing_loss", "expert_load"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Rotary(nn.Module):
    """cos/sin tables as transformers computes them. The inverse frequencies are no buffer, so that
    `model.to(torch.bfloat16)` cannot round them (transformers keeps them in fp32 too)."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self._inv_freq: dict[torch.device, torch.Tensor] = {}

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        if device not in self._inv_freq:  # computed on the CPU, as transformers does, then moved once
            A = self.head_dim
            self._inv_freq[device] = (1.0 / (self.theta ** (torch.arange(0, A, 2, dtype=torch.float) / A))).to(device)
        return self._inv_freq[device]

    @torch.no_grad()
    def forward(self, pos_BT: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs_BTa = pos_BT[..., None].float() * self.inv_freq(pos_BT.device)
        emb_BTA = torch.cat((freqs_BTa, freqs_BTa), dim=-1)
        return emb_BTA.cos().to(dtype), emb_BTA.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _apply_rotary(x_BHTA: torch.Tensor, cos_BTA: torch.Tensor, sin_BTA: torch.Tensor) -> torch.Tensor:
    cos, sin = cos_BTA.unsqueeze(1), sin_BTA.unsqueeze(1)
    return x_BHTA * cos + _rotate_half(x_BHTA) * sin


def doc_mask(doc_ids_BT: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, T, T) mask: causal, and only within the same document."""
    T = doc_ids_BT.shape[1]
    causal_TT = torch.ones(T, T, dtype=torch.bool, device=doc_ids_BT.device).tril()
    same_BTT = doc_ids_BT[:, :, None] == doc_ids_BT[:, None, :]
    return (same_BTT & causal_TT)[:, None]


_flex_compiled = None


def _flex_attention(device: torch.device):
    """flex_attention, compiled on CUDA (its fast path); eager elsewhere (a slow reference, for tests).
    Inside a graph being compiled (`compile_for_training`) the plain function is traced into it."""
    global _flex_compiled
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda" or torch.compiler.is_compiling():
        return flex_attention
    if _flex_compiled is None:
        _flex_compiled = torch.compile(flex_attention, dynamic=False)
    return _flex_compiled


def _flex_block_mask(doc_ids_BT: torch.Tensor):
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, kv):
        return (doc_ids_BT[b, q] == doc_ids_BT[b, kv]) & (q >= kv)

    B, T = doc_ids_BT.shape
    return create_block_mask(mask_mod, B, None, T, T, device=doc_ids_BT.device)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D, H, K, A = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.H, self.K, self.A = H, K, A
        self.q_proj = nn.Linear(D, H * A, bias=False)
        self.k_proj = nn.Linear(D, K * A, bias=False)
        self.v_proj = nn.Linear(D, K * A, bias=False)
        self.o_proj = nn.Linear(H * A, D, bias=False)
        self.q_norm = RMSNorm(A, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(A, cfg.rms_norm_eps)

    def forward(self, x_BTD, cos_BTA, sin_BTA, mask) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q_BHTA = self.q_norm(self.q_proj(x_BTD).view(B, T, self.H, self.A)).transpose(1, 2)
        k_BKTA = self.k_norm(self.k_proj(x_BTD).view(B, T, self.K, self.A)).transpose(1, 2)
        v_BKTA = self.v_proj(x_BTD).view(B, T, self.K, self.A).transpose(1, 2)
        q_BHTA = _apply_rotary(q_BHTA, cos_BTA, sin_BTA)
        k_BKTA = _apply_rotary(k_BKTA, cos_BTA, sin_BTA)
        gqa = self.H != self.K
        if mask is None:
            o_BHTA = F.scaled_dot_product_attention(q_BHTA, k_BKTA, v_BKTA, is_causal=True, enable_gqa=gqa)
        elif isinstance(mask, torch.Tensor):
            o_BHTA = F.scaled_dot_product_attention(q_BHTA, k_BKTA, v_BKTA, attn_mask=mask, enable_gqa=gqa)
        else:  # a flex-attention BlockMask; flex is not autocast-aware, and q/k leave RMSNorm in fp32
            dev = q_BHTA.device.type
            dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else v_BKTA.dtype
            o_BHTA = _flex_attention(q_BHTA.device)(q_BHTA.to(dt), k_BKTA.to(dt), v_BKTA.to(dt), block_mask=mask,
                                                    enable_gqa=gqa)
        return self.o_proj(o_BHTA.transpose(1, 2).reshape(B, T, self.H * self.A))


class Router(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cfg.num_experts, cfg.hidden_size))  # (E, D)


class Experts(nn.Module):
    """Expert weights as 3-D tensors, laid out as transformers' Qwen3MoeExperts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        E, D, I = cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))  # rows [:I] gate, [I:] up
        self.down_proj = nn.Parameter(torch.empty(E, D, I))


@torch.compiler.disable
def _experts(x_ND, router_w_ED, gate_up_E2ID, down_EDI, top_k: int, norm_topk_prob: bool, impl: str):
    """kernels.moe, kept out of torch.compile graphs: its Triton path is already fused, with its own
    autograd; the graph breaks here and resumes after it."""
    import kernels

    return kernels.moe(x_ND, router_w_ED, gate_up_E2ID, down_EDI, top_k, norm_topk_prob=norm_topk_prob, impl=impl)


def autocast_operands(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The MoE operands in autocast's compute dtype, when autocast is on. Autocast does not reach
    inside kernels.moe (the Triton path wants one bf16/fp16 dtype), so cast as it would for a Linear:
    fp32 master weights, low-precision compute."""
    dev = tensors[0].device.type
    if not torch.is_autocast_enabled(dev):
        return tensors
    dt = torch.get_autocast_dtype(dev)
    return tuple(t.to(dt) for t in tensors)


class SparseMoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = Router(cfg)
        self.experts = Experts(cfg)
        self.top_k = cfg.num_experts_per_tok
        self.norm_topk_prob = cfg.norm_topk_prob
        self.impl = cfg.moe_impl
        # Set by trainer.expert_parallel.shard_experts: the experts are then this rank's shard, and
        # the layer dispatches tokens to the ranks holding their experts.
        self.expert_parallel = None

    def forward(self, x_BTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        router_w_ED, gate_up_E2ID, down_EDI = self.gate.weight, self.experts.gate_up_proj, self.experts.down_proj
        if self.expert_parallel is not None:
            y_ND, router_logits_NE = self.expert_parallel(x_ND, router_w_ED, gate_up_E2ID, down_EDI, self.top_k,
                                                          self.norm_topk_prob, self.impl)
            return y_ND.view(B, T, D), router_logits_NE
        x_ND, router_w_ED, gate_up_E2ID, down_EDI = autocast_operands(x_ND, router_w_ED, gate_up_E2ID, down_EDI)
        y_ND, router_logits_NE = _experts(x_ND, router_w_ED, gate_up_E2ID, down_EDI, self.top_k,
                                          self.norm_topk_prob, self.impl)
        return y_ND.view(B, T, D), router_logits_NE


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = SparseMoE(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x_BTD, cos_BTA, sin_BTA, mask):
        x_BTD = x_BTD + self.self_attn(self.input_layernorm(x_BTD), cos_BTA, sin_BTA, mask)
        y_BTD, router_logits_NE = self.mlp(self.post_attention_layernorm(x_BTD))
        return x_BTD + y_BTD, router_logits_NE


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = Rotary(cfg.head_dim, cfg.rope_theta)


@dataclass
class ModelOutput:
    logits_BTV: torch.Tensor | None  # None when labels were given: the loss head keeps them to itself
    router_logits: list[torch.Tensor]  # L tensors of (N, E)
    ce_sum: torch.Tensor | None = None  # sum of fp32 token cross-entropies over labels != IGNORE


def _ce_sum(norm: RMSNorm, lm_head: nn.Linear, x_BTD: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """Final norm, LM head and the summed fp32 cross-entropy in one function, so torch.compile can fuse
    the upcast and the log-softmax into the logits' consumers: eager, the (N, V) fp32 copy of the
    logits and its log-softmax are each written and read again (two 2 GB tensors at N=16k, V=32k)."""
    logits_NV = lm_head(norm(x_BTD)).flatten(0, 1).float()
    return F.cross_entropy(logits_NV, labels_BT.reshape(-1), ignore_index=IGNORE, reduction="sum")


class MoEDecoder(nn.Module):
    """Qwen3-MoE causal LM. `state_dict()` keys equal transformers' fused (in-memory) names."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self._ce_sum = _ce_sum  # compile_for_training swaps in a compiled copy
        self.reset_parameters()

    def compile_for_training(self, **compile_kwargs) -> MoEDecoder:
        """torch.compile each decoder layer (attention, norms, rotary, residuals; the experts call
        breaks the graph and runs kernels.moe as is) and the loss head. In place; returns self.
        Shapes are static per run (packed rows), so the default is dynamic=False."""
        compile_kwargs.setdefault("dynamic", False)
        for layer in self.model.layers:
            layer.compile(**compile_kwargs)
        self._ce_sum = torch.compile(_ce_sum, **compile_kwargs)
        return self

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
            elif isinstance(m, Router):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, Experts):
                nn.init.normal_(m.gate_up_proj, std=std)
                nn.init.normal_(m.down_proj, std=std)

    def attention_mask(self, doc_ids_BT: torch.Tensor | None, device: torch.device):
        """None (plain causal), a dense boolean mask (CPU / sdpa) or a flex BlockMask (CUDA)."""
        if doc_ids_BT is None:
            return None
        impl = self.config.attn_impl
        if impl == "auto":
            impl = "flex" if device.type == "cuda" else "sdpa"
        return _flex_block_mask(doc_ids_BT) if impl == "flex" else doc_mask(doc_ids_BT)

    def forward(self, input_ids_BT: torch.Tensor, position_ids_BT: torch.Tensor | None = None,
                doc_ids_BT: torch.Tensor | None = None, labels_BT: torch.Tensor | None = None) -> ModelOutput:
        """Logits, or with `labels_BT` (already shifted; trainer.packing.IGNORE where no target) the
        summed cross-entropy instead of them."""
        B, T = input_ids_BT.shape
        if position_ids_BT is None:
            position_ids_BT = torch.arange(T, device=input_ids_BT.device).expand(B, T)
        x_BTD = self.model.embed_tokens(input_ids_BT)
        cos_BTA, sin_BTA = self.model.rotary_emb(position_ids_BT, x_BTD.dtype)
        mask = self.attention_mask(doc_ids_BT, input_ids_BT.device)
        router_logits = []
        for layer in self.model.layers:
            x_BTD, rl_NE = layer(x_BTD, cos_BTA, sin_BTA, mask)
            router_logits.append(rl_NE)
        if labels_BT is not None:
            return ModelOutput(None, router_logits, self._ce_sum(self.model.norm, self.lm_head, x_BTD, labels_BT))
        logits_BTV = self.lm_head(self.model.norm(x_BTD))
        return ModelOutput(logits_BTV, router_logits)


def load_balancing_loss(router_logits: list[torch.Tensor], num_experts: int, top_k: int,
                        valid_N: torch.Tensor | None = None) -> torch.Tensor:
    """Switch-Transformer auxiliary loss, as transformers' `load_balancing_loss_func`.

    E * sum_e f_e * P_e, where f_e is the fraction of (token, slot) assignments to expert e
    (summed over the k slots, as transformers does) and P_e the mean router probability;
    both are pooled over layers. `valid_N` (bool) leaves padding tokens out.
    """
    device = router_logits[0].device
    tokens_per_expert_E = torch.zeros(num_experts, device=device)
    prob_per_expert_E = torch.zeros(num_experts, device=device)
    w_N = None if valid_N is None else valid_N.reshape(-1).to(device=device, dtype=torch.float32)
    total = torch.zeros((), device=device)
    for logits_NE in router_logits:
        probs_NE = torch.softmax(logits_NE.float(), dim=-1)
        _, idx_Nk = torch.topk(probs_NE, top_k, dim=-1)
        counts_NkE = F.one_hot(idx_Nk, num_experts).float()
        if w_N is None:
            tokens_per_expert_E = tokens_per_expert_E + counts_NkE.sum(dim=(0, 1))
            prob_per_expert_E = prob_per_expert_E + probs_NE.sum(0)
            total = total + probs_NE.shape[0]
        else:
            tokens_per_expert_E = tokens_per_expert_E + (counts_NkE.sum(1) * w_N[:, None]).sum(0)
            prob_per_expert_E = prob_per_expert_E + (probs_NE * w_N[:, None]).sum(0)
            total = total + w_N.sum()
    total = total.clamp_min(1.0)
    return num_experts * torch.sum((tokens_per_expert_E / total) * (prob_per_expert_E / total))


@torch.no_grad()
def expert_load(router_logits: list[torch.Tensor], top_k: int, valid_N: torch.Tensor | None = None) -> torch.Tensor:
    """(L, E) fraction of top-k assignments per expert, per layer (rows sum to 1)."""
    # scatter_add with 0/1 weights rather than boolean indexing and bincount: both of those read a
    # size back to the host, which a CUDA-graphed step cannot do (trainer/cudagraph.py).
    rows = []
    for logits_NE in router_logits:
        E = logits_NE.shape[-1]
        idx_Nk = torch.topk(logits_NE.float(), top_k, dim=-1).indices
        w_Nk = torch.ones(idx_Nk.shape, device=idx_Nk.device)
        if valid_N is not None:
            w_Nk = w_Nk * valid_N.reshape(-1, 1).to(device=idx_Nk.device, dtype=w_Nk.dtype)
        counts_E = torch.zeros(E, device=idx_Nk.device).scatter_add_(0, idx_Nk.reshape(-1), w_Nk.reshape(-1))
        rows.append(counts_E / counts_E.sum().clamp_min(1.0))
    return torch.stack(rows)
