"""The base models gsvd knows: names, hub files, local layout, what each enables.

Local paths mirror upstream's ``GPT_SoVITS/pretrained_models/`` layout (which is also
the layout of the Hugging Face repo ``lj1995/GPT-SoVITS``), so a models directory and
a linked GPT-SoVITS install are read the same way.

Checksums: the sha256 of the real files is not pinned here. ``gsvd models fetch``
takes it from the hub's metadata for the revision it downloads (the LFS sha256 that
the hub returns as the file's ETag; small non-LFS files carry a git blob sha1),
verifies the download against it, and records sha256 + size + commit in the models
directory's lock file; ``gsvd models verify`` re-checks against that record. A
``sha256`` given in a ``HubFile`` below (when someone has one they trust) is checked
as well. This module only describes; it does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

HF_REPO = "lj1995/GPT-SoVITS"


@dataclass(frozen=True)
class HubFile:
    path: str
    """Path in the hub repo, which is also the path under the models directory."""
    size_hint: int | None = None
    """Bytes as published by mirrors (for display; the hub's metadata is authoritative)."""
    sha256: str | None = None
    """Pinned sha256, when known; otherwise taken from the hub at fetch time."""
    head_md5: str | None = None
    """MD5 of the first 8192 bytes, as upstream uses to recognise its official SoVITS files."""


@dataclass(frozen=True)
class BaseModel:
    name: str
    kind: str
    """hubert | bert | gpt+sovits | sv | discriminator"""
    files: tuple[HubFile, ...]
    enables: str
    versions: tuple[str, ...] = ()
    default: bool = False
    """Fetched by ``gsvd models fetch`` without names."""
    repo: str = HF_REPO

    @property
    def size_hint(self) -> int | None:
        sizes = [f.size_hint for f in self.files]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]


_V2_DIR = "gsv-v2final-pretrained"
_V2_GPT = f"{_V2_DIR}/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
_S1V3 = "s1v3.ckpt"

MODELS: dict[str, BaseModel] = {
    m.name: m
    for m in (
        BaseModel(
            "chinese-hubert-base",
            "hubert",
            (
                HubFile("chinese-hubert-base/config.json", 1449),
                HubFile("chinese-hubert-base/preprocessor_config.json", 212),
                HubFile("chinese-hubert-base/pytorch_model.bin", 188811417),
            ),
            "new voices from a reference clip (gsvd import, uploads): prompt tokens",
            default=True,
        ),
        BaseModel(
            "chinese-roberta-wwm-ext-large",
            "bert",
            (
                HubFile("chinese-roberta-wwm-ext-large/config.json", 963),
                HubFile("chinese-roberta-wwm-ext-large/tokenizer.json", 268962),
                HubFile("chinese-roberta-wwm-ext-large/pytorch_model.bin", 651225145),
            ),
            "BERT features for Chinese text (zh prosody as upstream)",
            default=True,
        ),
        BaseModel(
            "v2",
            "gpt+sovits",
            (
                HubFile(_V2_GPT, 155315150),
                HubFile(f"{_V2_DIR}/s2G2333k.pth", 106035259, head_md5="6642b37f3dbb1f76882b69937c95a5f3"),
            ),
            "the v2 base voice and v2 fine-tuning (most existing fine-tunes are v2)",
            versions=("v2",),
            default=True,
        ),
        BaseModel(
            "v2Pro",
            "gpt+sovits",
            (HubFile(_S1V3), HubFile("v2Pro/s2Gv2Pro.pth", head_md5="c7e9fce2223f3db685cdfa1e6368728a")),
            "the v2Pro base voice and v2Pro fine-tuning (needs sv)",
            versions=("v2Pro",),
        ),
        BaseModel(
            "v2ProPlus",
            "gpt+sovits",
            (HubFile(_S1V3), HubFile("v2Pro/s2Gv2ProPlus.pth", head_md5="66b313e39455b57ab1b0bc0b239c9d0a")),
            "the v2ProPlus base voice and v2ProPlus fine-tuning (needs sv)",
            versions=("v2ProPlus",),
        ),
        BaseModel(
            "sv",
            "sv",
            (HubFile("sv/pretrained_eres2netv2w24s4ep4.ckpt"),),
            "ERes2NetV2 speaker embeddings: references of v2Pro/v2ProPlus voices",
            versions=("v2Pro", "v2ProPlus"),
        ),
        BaseModel(
            "v2-discriminator",
            "discriminator",
            (HubFile(f"{_V2_DIR}/s2D2333k.pth"),),
            "SoVITS fine-tuning of v2 voices (gsvd train)",
            versions=("v2",),
        ),
        BaseModel(
            "v2Pro-discriminator",
            "discriminator",
            (HubFile("v2Pro/s2Dv2Pro.pth"),),
            "SoVITS fine-tuning of v2Pro voices (gsvd train)",
            versions=("v2Pro",),
        ),
        BaseModel(
            "v2ProPlus-discriminator",
            "discriminator",
            (HubFile("v2Pro/s2Dv2ProPlus.pth"),),
            "SoVITS fine-tuning of v2ProPlus voices (gsvd train)",
            versions=("v2ProPlus",),
        ),
    )
}

DEFAULT_SET = tuple(name for name, m in MODELS.items() if m.default)
# Extra names accepted on the command line.
ALIASES = {
    "hubert": "chinese-hubert-base",
    "bert": "chinese-roberta-wwm-ext-large",
    "roberta": "chinese-roberta-wwm-ext-large",
    "eres2netv2": "sv",
    "v2pro": "v2Pro",
    "v2proplus": "v2ProPlus",
}


def model(name: str) -> BaseModel:
    """The registry entry for ``name`` (or an alias); KeyError names the known ones."""
    key = ALIASES.get(name, ALIASES.get(name.lower(), name))
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown base model {name!r}; known: {', '.join(MODELS)}") from None


def base_models_for_version(version: str) -> tuple[str, ...]:
    """Names of the pretrained GPT+SoVITS (and speaker model) a version needs."""
    names = [version] if version in MODELS else []
    if version in ("v2Pro", "v2ProPlus"):
        names.append("sv")
    return tuple(names)
