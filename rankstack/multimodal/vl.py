"""Vision-language cross-encoders: score a (text, image) pair jointly, single-stream (UNITER, Oscar, VinVL, ViLT).

``VLCrossEncoder`` is the kind trained here: the frozen image tower's feature grid (7 x 7 regions of 1,280-d at
224 px) is projected into a BERT's embedding space, given learned region positions and token type 1, appended to
the text's token embeddings, and the pair goes through the BERT's layers together; a linear head on [CLS] scores
it. Started from the packaged all-MiniLM-L6-v2, saved as one directory (``vl_cross_encoder.json``, the
text encoder in ``text/``, the rest in ``heads.safetensors``).

``ViltScorer`` loads a ``transformers`` ViLT retrieval checkpoint (``dandelin/vilt-b32-finetuned-coco``) by Hub id
or directory. ``VLReranker`` is the Stage: text queries re-rank images, image queries re-rank texts.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import RankstackError
from rankstack.models import lazy, model_dir
from rankstack.models.layers import run_layers
from rankstack.models.model_dir import ModelDirectoryError
from rankstack.multimodal.images import ImageBatches, ImageError
from rankstack.multimodal.towers import EfficientNetTower, load_image_tower
from rankstack.pipeline import Stage, as_queries
from rankstack.types import Queries, Ranking

CONFIG_FILE = "vl_cross_encoder.json"
HEADS_FILE = "heads.safetensors"
FORMAT_VERSION = 1


class VLCrossEncoder:
    """Image regions + text tokens through one transformer; ``score(texts, images) -> [n]`` logits."""

    def __init__(self, image_tower: str | EfficientNetTower = "efficientnet-lite0", text_model: str | os.PathLike[str] = "minilm",
                 *, max_length: int = 48, device: str | None = None, batch_size: int = 32,
                 cache_images: int = 4096, seed: int = 0, _text_source: Path | None = None):  # fmt: skip
        torch = lazy.torch()
        transformers = lazy.transformers()
        self.device = lazy.default_device(device)
        self.tower = image_tower if isinstance(image_tower, EfficientNetTower) else load_image_tower(image_tower, self.device)
        self.text_name = str(text_model)
        path = _text_source or model_dir.resolve(text_model)[0]
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.text, _ = lazy.from_pretrained_quietly(transformers.AutoModel, path, **model_dir.encoder_kwargs(path))
        self.text.to(self.device).eval()
        hidden = int(self.text.config.hidden_size)
        with torch.no_grad():
            probe = self.tower.regions(torch.zeros(1, 3, self.tower.transform.size, self.tower.transform.size))
        self.num_regions = int(probe.shape[1])
        self.heads = torch.nn.Module()
        with torch.random.fork_rng(devices=[]):  # fresh parts initialised from ``seed``: repeatable training runs
            torch.manual_seed(seed)
            self.heads.region_projection = torch.nn.Linear(self.tower.dim, hidden)
            self.heads.region_position = torch.nn.Parameter(torch.zeros(self.num_regions, hidden))
            torch.nn.init.normal_(self.heads.region_position, std=0.02)
            self.heads.region_norm = torch.nn.LayerNorm(hidden, eps=1e-12)
            self.heads.score = torch.nn.Linear(hidden, 1)
        self.heads.to(self.device)
        self.max_length, self.batch_size = max_length, batch_size
        self.transform = self.tower.transform
        self._regions: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_images
        self.name = f"vl({self.tower.name}+{self.text_name})"

    def __repr__(self) -> str:
        return f"VLCrossEncoder({self.name!r})"

    # ---- images: the frozen tower's regions, computed once per file
    def regions(self, paths: Sequence[str | os.PathLike[str]]) -> tuple[Any, list[int]]:
        """``([m, regions, dim], kept)`` for the readable ``paths`` (bad files warned about and left out)."""
        torch = lazy.torch()
        keys = [str(p) for p in paths]
        missing = [k for k in dict.fromkeys(keys) if k not in self._regions]
        if missing:
            with torch.inference_mode():
                for rows, pixels in ImageBatches(missing, self.transform, self.batch_size):
                    out = self.tower.regions(torch.from_numpy(pixels).to(self.device))
                    for j, r in enumerate(rows):
                        self._remember(missing[r], out[j].clone())
        kept = [i for i, k in enumerate(keys) if k in self._regions]
        if not kept:
            return torch.zeros(0, self.num_regions, self.tower.dim), kept
        return torch.stack([self._regions[keys[i]] for i in kept]), kept

    def _remember(self, key: str, value: Any) -> None:
        self._regions[key] = value
        self._regions.move_to_end(key)
        while len(self._regions) > self._cache_size:
            self._regions.popitem(last=False)

    # ---- the joint forward (differentiable: training calls it)
    def forward(self, texts: Sequence[str], regions: Any) -> Any:
        """Logits ``[b]`` for ``texts[i]`` with the region grid ``regions[i]``."""
        torch = lazy.torch()
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)  # fmt: skip
        words = self.text.embeddings(input_ids=batch["input_ids"], token_type_ids=torch.zeros_like(batch["input_ids"]))
        kind = self.text.embeddings.token_type_embeddings.weight[1]
        image = self.heads.region_norm(self.heads.region_projection(regions.to(self.device)) + self.heads.region_position + kind)
        hidden = torch.cat([words, image], dim=1)
        mask = torch.cat([batch["attention_mask"], torch.ones(image.shape[:2], dtype=batch["attention_mask"].dtype,
                                                              device=self.device)], dim=1)  # fmt: skip
        states = run_layers(self.text.encoder.layer, hidden, mask)
        return self.heads.score(states[:, 0]).squeeze(-1)

    def score(self, texts: Sequence[str], images: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """One logit per (text, image) pair; NaN where the image cannot be read."""
        torch = lazy.torch()
        out = np.full(len(texts), np.nan)
        regions, kept = self.regions(images)
        with torch.inference_mode():
            for lo in range(0, len(kept), self.batch_size):
                rows = kept[lo : lo + self.batch_size]
                out[rows] = self.forward([texts[i] for i in rows], regions[lo : lo + len(rows)]).float().cpu().numpy()
        return out

    # ---- saving
    def config(self) -> dict[str, Any]:
        return {"kind": "vl-cross-encoder", "image_tower": self.tower.identity(), "text_tower": "text",
                "text_source": self.text_name, "max_length": self.max_length, "num_regions": self.num_regions}  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        from rankstack.index.manifest import atomic_directory

        out = Path(path)
        with atomic_directory(out, overwrite=True) as tmp:
            model_dir.save_pretrained(tmp / "text", self.text, self.tokenizer)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}, str(tmp / HEADS_FILE))
            model_dir.write_versioned(tmp / CONFIG_FILE, FORMAT_VERSION, self.config())
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None, batch_size: int = 32) -> VLCrossEncoder:
        from safetensors.torch import load_file

        root = Path(path)
        cfg = model_dir.read_versioned(root / CONFIG_FILE, FORMAT_VERSION)
        if not cfg:
            raise ModelDirectoryError(f"{root} has no {CONFIG_FILE}: not a vision-language cross-encoder saved by rankstack")
        model = cls(cfg["image_tower"], cfg.get("text_source", "text"), max_length=int(cfg["max_length"]), device=device,
                    batch_size=batch_size, _text_source=root / cfg.get("text_tower", "text"))  # fmt: skip
        model.heads.load_state_dict(load_file(str(root / HEADS_FILE)), strict=True)
        model.name = str(path)
        return model

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        again = VLCrossEncoder.load(path, device=self.device)
        self.text.load_state_dict(again.text.state_dict())
        self.heads.load_state_dict(again.heads.state_dict())


class ViltScorer:
    """A ``transformers`` ViLT image-text retrieval checkpoint (``ViltForImageAndTextRetrieval``), e.g.
    ``dandelin/vilt-b32-finetuned-coco``: the score is its retrieval logit. Images are read by rankstack's reader
    (bad files warned about) and prepared by the checkpoint's own processor."""

    def __init__(self, model: str | os.PathLike[str], device: str | None = None, batch_size: int = 16):
        transformers = lazy.transformers()
        self.name = str(model)
        self.path, _ = model_dir.resolve(model)
        self.device = lazy.default_device(device)
        self.processor = transformers.ViltProcessor.from_pretrained(self.path)
        self.model = transformers.ViltForImageAndTextRetrieval.from_pretrained(self.path).to(self.device).eval()
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"ViltScorer({self.name!r})"

    def score(self, texts: Sequence[str], images: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        import warnings

        from rankstack.multimodal.images import open_image

        torch = lazy.torch()
        out = np.full(len(texts), np.nan)
        for lo in range(0, len(texts), self.batch_size):
            rows, pictures = [], []
            for i in range(lo, min(lo + self.batch_size, len(texts))):
                try:
                    pictures.append(open_image(images[i]))
                    rows.append(i)
                except ImageError as e:
                    warnings.warn(f"skipping image {e}", stacklevel=2)
            if not rows:
                continue
            batch = self.processor(images=pictures, text=[texts[i] for i in rows], padding=True, truncation=True,
                                   return_tensors="pt").to(self.device)  # fmt: skip
            with torch.inference_mode():
                out[rows] = self.model(**batch).logits[:, 0].float().cpu().numpy()
        return out


def load_vl_scorer(model: str | os.PathLike[str] | Any, device: str | None = None) -> Any:
    """A saved ``VLCrossEncoder`` directory, or a ViLT checkpoint (directory or Hub id)."""
    if hasattr(model, "score"):
        return model
    if (Path(str(model)) / CONFIG_FILE).is_file():
        return VLCrossEncoder.load(model, device=device)
    return ViltScorer(model, device=device)


class VLReranker(Stage):
    """Re-score a ranking's (query, document) pairs with a vision-language cross-encoder.

    Text queries over image documents: ``images`` maps docid -> image path (an ``ImageCollection`` gives it).
    Image queries (``Queries.image``) over text documents: ``texts`` maps docid -> text (captions). Documents
    without an image or text are kept below the re-scored ones, in their old order, with a warning.
    """

    def __init__(self, model: Any, images: Mapping[str, Any] | Any = None, texts: Mapping[str, str] | Queries | None = None,
                 device: str | None = None):  # fmt: skip
        self.model = load_vl_scorer(model, device)
        source = getattr(images, "images", images)
        self.images = {str(k): str(v) for k, v in (source or {}).items()}
        self.texts = texts.to_dict() if isinstance(texts, Queries) else dict(texts or {})
        if not self.images and not self.texts:
            raise RankstackError("VLReranker needs images (docid -> path) for text queries or texts (docid -> text) "
                                 "for image queries")  # fmt: skip

    def __repr__(self) -> str:
        return f"VLReranker({self.model!r}, {len(self.images)} images, {len(self.texts)} texts)"

    def __call__(self, inp: Ranking) -> Ranking:
        if not isinstance(inp, Ranking):
            raise TypeError("VLReranker re-ranks a Ranking: put a first stage before it (retriever % 20 >> reranker)")
        queries = as_queries(inp)
        qtext = queries.to_dict()
        qimage = dict(zip(queries.qid.tolist(), queries.image.tolist(), strict=True)) if queries.image is not None else {}
        pair_texts, pair_images, rows = [], [], []
        for row, (qid, docid) in enumerate(zip(inp.qid.tolist(), inp.docid.tolist(), strict=True)):
            if qimage.get(qid):
                text, image = self.texts.get(docid), qimage[qid]
            else:
                text, image = qtext.get(qid, ""), self.images.get(docid)
            if text is None or image is None:
                continue
            pair_texts.append(text)
            pair_images.append(image)
            rows.append(row)
        scores = inp.score.astype(float) - np.inf  # unscored rows: below every scored one, in their old order
        if len(rows) < len(inp):
            import warnings

            warnings.warn(f"{len(inp) - len(rows)} documents have no image or text to score: kept at the bottom",
                          stacklevel=2)  # fmt: skip
        if rows:
            scored = self.model.score(pair_texts, pair_images)
            scores[rows] = np.where(np.isnan(scored), -np.inf, scored)
        finite = np.isfinite(scores)
        low = np.nanmin(scores[finite]) if finite.any() else 0.0
        order_penalty = -inp.rank.astype(float) / (len(inp) + 1)
        scores = np.where(finite, scores, low - 1.0 + order_penalty)
        return Ranking(inp.qid, inp.docid, scores, queries=inp.queries)
