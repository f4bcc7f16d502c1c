"""CLIP's text encoder during EEG training: frozen, partly unfrozen, adapters or LoRA.

Handout section 5.5.7. :class:`CaptionEncoder` wraps CLIP's text tower and maps
caption ids to unit-norm embeddings. When nothing in it trains, the embeddings of
every caption are computed once and looked up; otherwise they are computed with
gradients for the captions of each batch, and again after training for evaluation.

Strategies (``strategy``):

``"frozen"``
    Nothing in CLIP trains (used both for "both frozen", where the EEG encoder is
    frozen too, and for "frozen CLIP").
``"partial"``
    The last ``n_unfrozen_layers`` text transformer layers, the final layer norm and
    the text projection train; the rest stays frozen.
``"adapter"``
    A bottleneck adapter (Houlsby et al., 2019) after the MLP of every text layer,
    ``x + up(gelu(down(x)))`` with ``up`` zero-initialised, so training starts from
    the pretrained model exactly; all CLIP weights stay frozen.
``"lora"``
    LoRA (Hu et al., 2022) through ``peft`` on the text attention's query and value
    projections, rank ``lora_rank``; all CLIP weights stay frozen.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from eegkit._checks import check_option
from eegkit.retrieval.clip import Clip

#: The fine-tuning strategies of CLIP's text encoder and how tables name them.
STRATEGIES = {"frozen": "frozen", "partial": "partial unfreezing", "adapter": "adapters", "lora": "LoRA"}


class BottleneckAdapter(nn.Module):
    """``x + up(gelu(down(x)))``, ``up`` zero-initialised (identity at the start).

    Parameters
    ----------
    dim : int
        Width of the wrapped layer's output.
    bottleneck : int, default=16
    """

    def __init__(self, dim: int, bottleneck: int = 16):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(nn.functional.gelu(self.down(x)))


class _MLPWithAdapter(nn.Module):
    """A text layer's MLP followed by an adapter (the residual add stays the layer's)."""

    def __init__(self, mlp: nn.Module, dim: int, bottleneck: int):
        super().__init__()
        self.mlp = mlp
        self.adapter = BottleneckAdapter(dim, bottleneck)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.mlp(hidden_states))


class CaptionEncoder(nn.Module):
    """CLIP's text tower under a fine-tuning strategy, indexed by caption id.

    Parameters
    ----------
    clip : Clip
        Its text model and text projection are used; trainable strategies copy them
        first, so ``clip`` itself never changes.
    captions : sequence of str
        Every caption, indexed by caption id (``data.captions`` deduplicated).
    strategy : {"frozen", "partial", "adapter", "lora"}, default="frozen"
    n_unfrozen_layers : int, default=1
        ``"partial"``: how many of the last text layers train.
    adapter_bottleneck : int, default=16
    lora_rank : int, default=4
    lora_alpha : int, default=8
    """

    def __init__(self, clip: Clip, captions: Sequence[str], strategy: str = "frozen",
                 n_unfrozen_layers: int = 1, adapter_bottleneck: int = 16,
                 lora_rank: int = 4, lora_alpha: int = 8):
        super().__init__()
        check_option("strategy", strategy, STRATEGIES)
        self.strategy = strategy
        # Strategies that train change the text tower in place: work on a copy, so the
        # caller's CLIP (shared by other configurations) stays as loaded.
        copy_if_trained = (lambda m: m) if strategy == "frozen" else copy.deepcopy
        self.text_model = copy_if_trained(clip.model.text_model)
        self.text_projection = copy_if_trained(clip.model.text_projection)
        self.dim = int(clip.model.config.projection_dim)
        tokens = clip.processor.tokenizer([str(c) for c in captions], padding=True, truncation=True,
                                          return_tensors="pt")
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention_mask", tokens["attention_mask"], persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        layers = self.text_model.encoder.layers
        if strategy == "partial":
            if not 0 < n_unfrozen_layers <= len(layers):
                raise ValueError(f"n_unfrozen_layers={n_unfrozen_layers}; the text model has {len(layers)} layers")
            for module in [*layers[-n_unfrozen_layers:], self.text_model.final_layer_norm, self.text_projection]:
                module.requires_grad_(True)
        elif strategy == "adapter":
            width = self.text_model.config.hidden_size
            for layer in layers:
                layer.mlp = _MLPWithAdapter(layer.mlp, width, adapter_bottleneck)
        elif strategy == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                                target_modules=["q_proj", "v_proj"])
            inject_adapter_in_model(config, self.text_model)
            for name, p in self.text_model.named_parameters():
                p.requires_grad_("lora_" in name)
        self.register_buffer("cached", torch.empty(0), persistent=False)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def n_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings, shape (n, dim), with gradients where parameters train."""
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return nn.functional.normalize(self.text_projection(pooled).float(), dim=-1)

    @torch.no_grad()
    def embed_all(self, batch_size: int = 256) -> torch.Tensor:
        """Every caption's embedding with the current weights, shape (n_captions, dim)."""
        was_training = self.training
        self.eval()
        out = torch.cat([self.encode(self.input_ids[i:i + batch_size], self.attention_mask[i:i + batch_size])
                         for i in range(0, len(self.input_ids), batch_size)])
        self.train(was_training)
        return out

    def forward(self, caption_ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of the given caption ids, shape (n, dim), unit norm."""
        if not self.trainable:
            if self.cached.numel() == 0 or self.cached.device != self.input_ids.device:
                self.cached = self.embed_all()
            return self.cached[caption_ids]
        # Each distinct caption once; duplicates in the batch share the result.
        unique, inverse = torch.unique(caption_ids, return_inverse=True)
        return self.encode(self.input_ids[unique], self.attention_mask[unique])[inverse]

    def train(self, mode: bool = True):
        # Frozen parts stay in eval mode (no dropout) even while the EEG side trains.
        super().train(mode and self.trainable)
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self.cached = torch.empty(0, device=self.input_ids.device)  # weights change: drop the cache
        super()._load_from_state_dict(*args, **kwargs)
