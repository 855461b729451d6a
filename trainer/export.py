"""Export a trained `MoEDecoder` as a directory `transformers.Qwen3MoeForCausalLM` loads.

Layout written (what `Qwen3MoeForCausalLM.save_pretrained` writes in transformers 5):
    config.json             Qwen3MoeConfig fields (`ModelConfig.to_hf_dict`)
    generation_config.json  eos / pad ids
    model.safetensors       per-expert keys `model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight`,
                            which transformers fuses on load into `gate_up_proj (E, 2I, D)` /
                            `down_proj (E, D, I)`; every other key keeps its name
    tokenizer files         from `PreTrainedTokenizerFast.save_pretrained`
Not for: resuming training (use `trainer.checkpoint`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

__all__ = ["export", "hf_state_dict"]

_EXPERTS = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")


def hf_state_dict(state: dict[str, torch.Tensor], moe_intermediate_size: int) -> dict[str, torch.Tensor]:
    """Our (fused) state dict in the Hub's per-expert key layout, contiguous and detached."""
    out: dict[str, torch.Tensor] = {}
    I = moe_intermediate_size
    for key, t in state.items():
        t = t.detach()
        m = _EXPERTS.match(key)
        if m is None:
            out[key] = t.contiguous()
            continue
        prefix, kind = m.groups()
        for e in range(t.shape[0]):
            if kind == "gate_up_proj":  # (2I, D): rows [:I] are gate, [I:] up
                out[f"{prefix}.{e}.gate_proj.weight"] = t[e, :I].contiguous()
                out[f"{prefix}.{e}.up_proj.weight"] = t[e, I:].contiguous()
            else:
                out[f"{prefix}.{e}.down_proj.weight"] = t[e].contiguous()
    return out


def export(model, tokenizer, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
    """Write `out_dir` (config, weights, tokenizer); returns its path. `model` may be DDP-wrapped."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)
    cfg = model.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.to("cpu", dtype) for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    tensors = hf_state_dict(state, cfg.moe_intermediate_size)
    tmp = out / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")

    hf = cfg.to_hf_dict()
    hf["dtype"] = str(dtype).removeprefix("torch.")
    _write_json(out / "config.json", hf)
    gen = {"eos_token_id": cfg.eos_token_id, "pad_token_id": cfg.pad_token_id, "bos_token_id": cfg.bos_token_id}
    _write_json(out / "generation_config.json", {k: v for k, v in gen.items() if v is not None})
    tokenizer.save_pretrained(str(out))
    return out


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)
