"""Configuration of the trainer: small dataclasses, and recipes as plain functions.

`ModelConfig` uses the field names of transformers' `Qwen3MoeConfig`, so that `to_hf_dict()` is
the exported `config.json`. A recipe is a function returning a `TrainConfig`; one dial, `depth`,
derives width, heads, experts and learning rate (`model_config_for_depth`). The CLI only
overrides fields (steps, seed, ...).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from trainer.errors import ConfigError

__all__ = [
    "RECIPES",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "get_recipe",
    "medium",
    "model_config_for_depth",
    "small",
    "tiny",
]


@dataclass(frozen=True)
class ModelConfig:
    """Qwen3-MoE hyper-parameters (names as in `transformers.Qwen3MoeConfig`)."""

    vocab_size: int = 1024
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = 32
    moe_intermediate_size: int = 64
    num_experts: int = 4
    num_experts_per_tok: int = 2
    norm_topk_prob: bool = True
    router_aux_loss_coef: float = 0.001
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    # Not part of the exported architecture: how the expert computation runs (kernels.moe impl).
    moe_impl: str = "auto"
    # Not exported either: "auto" (flex on CUDA for packed batches, else sdpa), "sdpa" or "flex".
    attn_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ConfigError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must lie in 1..num_experts ({self.num_experts})"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head_dim ({self.head_dim}) must be even for rotary embeddings")
        if self.moe_impl not in ("torch", "triton", "auto"):
            raise ConfigError(f"moe_impl must be one of torch, triton, auto; got {self.moe_impl!r}")
        if self.attn_impl not in ("sdpa", "flex", "auto"):
            raise ConfigError(f"attn_impl must be one of sdpa, flex, auto; got {self.attn_impl!r}")

    def architecture(self) -> dict:
        """The fields that decide parameter shapes; a checkpoint must match them to resume."""
        keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "moe_intermediate_size", "num_experts", "num_experts_per_tok", "tie_word_embeddings")
        return {k: getattr(self, k) for k in keys}

    def to_hf_dict(self) -> dict:
        """`config.json` for `transformers.Qwen3MoeForCausalLM`."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("moe_impl", "attn_impl", "rope_theta")}
        d.update(
            architectures=["Qwen3MoeForCausalLM"],
            model_type="qwen3_moe",
            hidden_act="silu",
            intermediate_size=self.moe_intermediate_size,  # dense MLP width; unused as every layer is MoE
            decoder_sparse_step=1,
            mlp_only_layers=[],
            attention_bias=False,
            attention_dropout=0.0,
            use_sliding_window=False,
            sliding_window=None,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            rope_theta=self.rope_theta,  # older transformers read it from here
            output_router_logits=False,
            use_cache=True,
            dtype="float32",
        )
        return d

    def num_params(self) -> tuple[int, int]:
        """(total, active per token) parameter counts."""
        D, H, KV, hd = self.hidden_size, self.num_attention_heads, self.num_key_value_heads, self.head_dim
        attn = D * H * hd * 2 + D * KV * hd * 2 + 2 * hd
        expert = 3 * D * self.moe_intermediate_size
        per_layer_fixed = attn + self.num_experts * D + 2 * D
        emb = self.vocab_size * D * (1 if self.tie_word_embeddings else 2) + D
        L = self.num_hidden_layers
        total = emb + L * (per_layer_fixed + self.num_experts * expert)
        active = emb + L * (per_layer_fixed + self.num_experts_per_tok * expert)
        return total, active


@dataclass(frozen=True)
class DataConfig:
    seq_len: int = 256
    fim_rate: float = 1.0        # FIM samples per touched file (0 disables, 1 = one per file)
    fim_loss: str = "all"       # "all" tokens of a FIM sample, or "middle" only
    max_file_chars: int = 20000  # files longer than this are left out of repair prompts

    def __post_init__(self) -> None:
        if self.fim_loss not in ("all", "middle"):
            raise ConfigError(f"fim_loss must be 'all' or 'middle', got {self.fim_loss!r}")
        if self.seq_len < 16:
            raise ConfigError(f"seq_len ({self.seq_len}) must be at least 16")


@dataclass(frozen=True)
class TrainConfig:
    recipe: str
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 20
    micro_batch_size: int = 2
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 2
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 0          # 0: evaluate only at the end
    eval_batches: int = 4
    save_every: int = 0          # 0: save only at the end
    log_every: int = 1
    tokenizer_vocab_size: int = 1024
    fsdp: bool = False           # FSDP2 instead of DDP when running under torchrun
    ep: int = 1                  # expert-parallel group size (trainer/expert_parallel.py); > 1 needs fsdp
    compile: bool | None = None  # torch.compile layers and loss head; None: on CUDA only
    cuda_graph: bool | None = None  # replay steps as a CUDA graph; None: one CUDA process, compiled

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.micro_batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("micro_batch_size and grad_accum must be at least 1")
        if self.ep < 1:
            raise ConfigError(f"--ep must be at least 1, got {self.ep}")
        if self.ep > 1 and not self.fsdp:
            raise ConfigError(f"--ep {self.ep} shards the experts and FSDP2 the rest of the model: "
                              "drop --no-fsdp (or use --ep 1 for DDP)")
        if self.model.num_experts % self.ep:
            raise ConfigError(f"--ep {self.ep} must divide the number of experts ({self.model.num_experts})")

    def replace(self, **overrides) -> TrainConfig:
        return dataclasses.replace(self, **overrides)


def model_config_for_depth(depth: int, vocab_size: int, head_dim: int = 64, aspect: int = 64) -> ModelConfig:
    """One dial: depth sets width (depth*aspect), heads, KV heads, experts and expert width."""
    hidden = depth * aspect
    heads = max(1, hidden // head_dim)
    kv = max(1, heads // 4)
    while heads % kv:
        kv -= 1
    num_experts = min(64, 4 * 2 ** (depth // 4))
    top_k = max(2, num_experts // 8)
    inter = max(32, math.ceil(hidden * 2 / 3 / 32) * 32)
    return ModelConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        moe_intermediate_size=inter,
        num_experts=num_experts,
        num_experts_per_tok=top_k,
        max_position_embeddings=8192,
    )


def _lr_for(hidden: int) -> float:
    return 0.02 / math.sqrt(hidden)


def tiny(vocab_size: int = 1024) -> TrainConfig:
    """CPU tests and the demo: 2 layers, width 64, 4 experts (top-2)."""
    model = model_config_for_depth(2, vocab_size, head_dim=32, aspect=32)
    return TrainConfig(recipe="tiny", model=model, data=DataConfig(seq_len=512), steps=20,
                       micro_batch_size=2, lr=3e-3, warmup_steps=2, tokenizer_vocab_size=vocab_size)


def small(vocab_size: int = 32768) -> TrainConfig:
    """About 0.5 B total parameters: depth 12, width 768, 32 experts (top-4)."""
    model = model_config_for_depth(12, vocab_size)
    return TrainConfig(recipe="small", model=model, data=DataConfig(seq_len=2048), steps=2000,
                       micro_batch_size=8, lr=_lr_for(model.hidden_size), warmup_steps=100,
                       eval_every=200, save_every=500, tokenizer_vocab_size=vocab_size)


def medium(vocab_size: int = 32768) -> TrainConfig:
    """About 2.3 B total parameters: depth 16, width 1024, 64 experts (top-8); FSDP2 under torchrun."""
    model = model_config_for_depth(16, vocab_size)
    return TrainConfig(recipe="medium", model=model, data=DataConfig(seq_len=4096), steps=5000,
                       micro_batch_size=4, grad_accum=2, lr=_lr_for(model.hidden_size), warmup_steps=200,
                       eval_every=500, save_every=500, tokenizer_vocab_size=vocab_size, fsdp=True)


RECIPES = {"tiny": tiny, "small": small, "medium": medium}


def get_recipe(name: str, vocab_size: int | None = None) -> TrainConfig:
    if name not in RECIPES:
        raise ConfigError(f"unknown --recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]() if vocab_size is None else RECIPES[name](vocab_size)
