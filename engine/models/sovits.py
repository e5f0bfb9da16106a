"""GPT-SoVITS stage 2 (SoVITS v1/v2/v2Pro/v2ProPlus): semantic tokens + phones + timbre -> 32 kHz audio.

Pure nn.Module code; parameter names equal upstream's `SynthesizerTrn` keys
(with weight norm folded). The decode path is split into pieces so a streaming
decoder can run them on windows of frames:

    ge = compute_ge(spec, sv_emb)                       # timbre [B, gin, 1]
    h, mask = content(codes, phones, ge)                # [B, H, 2T] before encoder2
    m, logs, mask = prior(h, mask, speed)               # 50 Hz prior
    z_p = m + noise * exp(logs) * noise_scale
    wav = vocode(z_p, mask, ge)                         # reverse flow + HiFi-GAN
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gsvd.engine.models.hifigan import Generator
from gsvd.engine.models.quantizer import VectorQuantizer
from gsvd.engine.models.vits_modules import ContentEncoder, CouplingFlow, PosteriorEncoder, StyleEncoder

V2PRO = ("v2Pro", "v2ProPlus")
SV_DIM = 20480


@dataclass(frozen=True)
class SovitsDims:
    version: str = "v2"
    spec_channels: int = 1025
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    gin_channels: int = 512
    n_symbols: int = 732
    ssl_dim: int = 768
    mrte_hidden: int = 512
    codebook_size: int = 1024
    semantic_frame_rate: str = "25hz"
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, config: dict, version: str) -> SovitsDims:
        """From upstream's embedded s2 json (config["data"], config["model"])."""
        m, d = config["model"], config.get("data", {})
        return cls(
            version=version,
            spec_channels=int(d.get("filter_length", 2048)) // 2 + 1,
            inter_channels=int(m["inter_channels"]),
            hidden_channels=int(m["hidden_channels"]),
            filter_channels=int(m["filter_channels"]),
            n_heads=int(m["n_heads"]),
            n_layers=int(m["n_layers"]),
            kernel_size=int(m["kernel_size"]),
            resblock_kernel_sizes=tuple(int(k) for k in m["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(int(x) for x in ds) for ds in m["resblock_dilation_sizes"]),
            upsample_rates=tuple(int(u) for u in m["upsample_rates"]),
            upsample_initial_channel=int(m["upsample_initial_channel"]),
            upsample_kernel_sizes=tuple(int(k) for k in m["upsample_kernel_sizes"]),
            gin_channels=int(m["gin_channels"]),
            n_symbols=322 if version == "v1" else 732,
            ssl_dim=int(m.get("ssl_dim", 768)),
            mrte_hidden=int(m.get("mrte_hidden", 512)),
            semantic_frame_rate="25hz",
        )

    @property
    def hop(self) -> int:
        n = 1
        for u in self.upsample_rates:
            n *= u
        return n

    @property
    def is_v2pro(self) -> bool:
        return self.version in V2PRO


class SynthesizerTrn(nn.Module):
    def __init__(self, dims: SovitsDims, with_posterior: bool = False) -> None:
        super().__init__()
        self.dims = dims
        self.enc_p = ContentEncoder(
            dims.inter_channels,
            dims.hidden_channels,
            dims.filter_channels,
            dims.n_heads,
            dims.n_layers,
            dims.kernel_size,
            dims.n_symbols,
            dims.ssl_dim,
            dims.mrte_hidden,
        )
        self.dec = Generator(
            dims.inter_channels,
            list(dims.resblock_kernel_sizes),
            [list(d) for d in dims.resblock_dilation_sizes],
            list(dims.upsample_rates),
            dims.upsample_initial_channel,
            list(dims.upsample_kernel_sizes),
            dims.gin_channels,
        )
        if with_posterior:
            self.enc_q = PosteriorEncoder(dims.spec_channels, dims.inter_channels, dims.hidden_channels, dims.gin_channels)
        self.flow = CouplingFlow(dims.inter_channels, dims.hidden_channels, dims.gin_channels)
        ref_in = dims.spec_channels if dims.version == "v1" else 704
        self.ref_enc = StyleEncoder(ref_in, dims.gin_channels)
        self.ssl_proj = nn.Conv1d(dims.ssl_dim, dims.ssl_dim, 2, stride=2)
        self.quantizer = VectorQuantizer(dims.ssl_dim, dims.codebook_size)
        if dims.is_v2pro:
            self.sv_emb = nn.Linear(SV_DIM, dims.gin_channels)
            self.ge_to512 = nn.Linear(dims.gin_channels, dims.mrte_hidden)
            self.prelu = nn.PReLU(num_parameters=dims.gin_channels)

    # -- reference / prompt -------------------------------------------------

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features [B, ssl_dim, T50] -> semantic codes [B, 1, T25]."""
        return self.quantizer.encode(self.ssl_proj(ssl)).unsqueeze(1)

    def compute_ge(self, spec: torch.Tensor, sv_emb: torch.Tensor | None = None) -> torch.Tensor:
        """Linear spectrogram [B, 1025, Tr] (+ SV embedding [B, 20480]) -> timbre ge [B, gin, 1]."""
        ref = spec if self.dims.version == "v1" else spec[:, :704]
        ge = self.ref_enc(ref)
        if self.dims.is_v2pro:
            if sv_emb is None:
                raise ValueError("v2Pro/v2ProPlus models need a speaker embedding (sv_emb)")
            ge = self.prelu(ge + self.sv_emb(sv_emb).unsqueeze(-1))
        return ge

    def mrte_ge(self, ge: torch.Tensor) -> torch.Tensor:
        """The timbre vector MRTE adds: ge (v1/v2) or ge_to512(ge) (v2Pro)."""
        if self.dims.is_v2pro:
            return self.ge_to512(ge.transpose(2, 1)).transpose(2, 1)
        return ge

    # -- decode pieces ------------------------------------------------------

    def content(self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor,
                code_lens: torch.Tensor | None = None, text_lens: torch.Tensor | None = None):
        """codes [B,1,T25], text [B,Tp] -> (hidden [B,H,2*T25] before encoder2, mask [B,1,2*T25]).
        code_lens / text_lens [B] mark the real tokens and phones of a padded batch (all, when None)."""
        quantized = self.quantizer.decode(codes[:, 0])
        quantized = F.interpolate(quantized, scale_factor=2.0, mode="nearest")
        t, dtype = quantized.shape[-1], quantized.dtype
        if code_lens is None:
            mask = torch.ones(quantized.shape[0], 1, t, dtype=dtype, device=quantized.device)
        else:
            mask = sequence_mask(2 * code_lens, t).unsqueeze(1).to(dtype)
        text_mask = None if text_lens is None else sequence_mask(text_lens, text.shape[1]).unsqueeze(1).to(dtype)
        return self.enc_p.encode(quantized, mask, text, self.mrte_ge(ge), text_mask), mask

    def prior(self, hidden: torch.Tensor, mask: torch.Tensor, speed: float = 1.0):
        """encoder2 + projection -> (m_p, logs_p, mask) at 50 Hz (re-timed by speed)."""
        return self.enc_p.finish(hidden, mask, speed)

    def vocode(self, z_p: torch.Tensor, mask: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """Reverse flow + HiFi-GAN: z_p [B, C, T50] -> wav [B, 1, T50 * hop]."""
        z = self.flow(z_p, mask, ge, reverse=True)
        return self.dec(z * mask, g=ge)

    # -- training (fine-tuning) ----------------------------------------------

    def forward_train(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lens: torch.Tensor,
        text: torch.Tensor,
        text_lens: torch.Tensor,
        sv_emb: torch.Tensor | None = None,
        segment_frames: int = 32,
    ):
        """Teacher-forced pass (needs with_posterior=True); the quantizer stays frozen.

        ssl [B,ssl,T50], spec [B,1025,T50] with spec_lens [B], text [B,Tp] with text_lens [B],
        sv_emb [B,20480] (v2Pro) -> (wav_hat [B,1,segment_frames*hop], ids_slice [B] (start frame),
        (z_p, logs_q, m_p, logs_p, z_mask) for the KL loss).
        """
        t = spec.shape[-1]
        y_mask = sequence_mask(spec_lens, t).unsqueeze(1).to(spec.dtype)
        ge = torch.cat([self.compute_ge(spec[i : i + 1, :, : int(n)], None if sv_emb is None else sv_emb[i : i + 1])
                        for i, n in enumerate(spec_lens)])
        with torch.no_grad():
            codes = self.quantizer.encode(self.ssl_proj(ssl))
            quantized = self.quantizer.decode(codes)
        quantized = F.interpolate(quantized, size=t, mode="nearest") if quantized.shape[-1] * 2 != t else \
            F.interpolate(quantized, scale_factor=2.0, mode="nearest")
        text_mask = sequence_mask(text_lens, text.shape[1]).unsqueeze(1).to(spec.dtype)
        hidden = self.enc_p.encode(quantized, y_mask, text, self.mrte_ge(ge), text_mask)
        m_p, logs_p, _ = self.enc_p.finish(hidden, y_mask)
        z, _, logs_q = self.enc_q(spec, y_mask, g=ge)
        z_p = self.flow(z, y_mask, ge)
        ids = random_slice_starts(spec_lens, segment_frames)
        z_slice = torch.stack([z[i, :, s : s + segment_frames] for i, s in enumerate(ids.tolist())])
        return self.dec(z_slice, g=ge), ids, (z_p, logs_q, m_p, logs_p, y_mask)

    def decode(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer: torch.Tensor,
        noise_scale: float = 0.5,
        speed: float = 1.0,
        sv_emb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Whole-utterance decode: codes [1,1,T], phones [1,Tp], spec [1,1025,Tr] -> wav [1,1,T*2*hop]."""
        ge = self.compute_ge(refer, sv_emb)
        hidden, mask = self.content(codes, text, ge)
        m, logs, mask = self.prior(hidden, mask, speed)
        noise = torch.randn(m.shape, generator=generator, device=m.device, dtype=m.dtype)
        z_p = m + noise * torch.exp(logs) * noise_scale
        return self.vocode(z_p, mask, ge)


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool (True inside each length)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def random_slice_starts(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """A random start frame per item so that `frames` frames fit inside its length."""
    hi = torch.clamp(lengths - frames + 1, min=1).float()
    return (torch.rand(lengths.shape, device=lengths.device) * hi).long()
