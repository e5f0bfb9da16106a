"""SoVITS building blocks: WaveNet stack, coupling flow, MRTE, reference (style) encoder,
content (text) encoder, posterior encoder. Pure nn.Module code, channel-first [B, C, T].

Weight-normed layers of upstream checkpoints are held here as plain convolutions;
the checkpoint loader folds weight_g/weight_v into `weight`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsvd.engine.models.vits_attention import RelativeAttention, RelEncoder


def gated_tanh(x: torch.Tensor, cond: torch.Tensor, channels: int) -> torch.Tensor:
    s = x + cond
    return torch.tanh(s[:, :channels]) * torch.sigmoid(s[:, channels:])


class WN(nn.Module):
    """Non-causal WaveNet: dilated convs gated by a global condition."""

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        if gin_channels:
            self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dil = dilation_rate**i
            pad = (kernel_size * dil - dil) // 2
            self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=dil, padding=pad))
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(nn.Conv1d(hidden, out, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        output = torch.zeros_like(x)
        cond = self.cond_layer(g) if g is not None else None
        h = self.hidden
        for i in range(self.n_layers):
            x_in = self.in_layers[i](x)
            g_l = cond[:, i * 2 * h : (i + 1) * 2 * h] if cond is not None else torch.zeros_like(x_in)
            rs = self.res_skip_layers[i](gated_tanh(x_in, g_l, h))
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                output = output + rs[:, h:]
            else:
                output = output + rs
        return output * mask


class CouplingLayer(nn.Module):
    """Mean-only affine coupling: x1 <- x1 +/- m(x0)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, 1, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None, reverse: bool) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        m = self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask
        x1 = (x1 - m) * mask if reverse else m + x1 * mask
        return torch.cat([x0, x1], 1)


class Flip(nn.Module):
    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """4 coupling layers interleaved with channel flips (keys flows.0/2/4/6)."""

    def __init__(self, channels: int, hidden: int, gin_channels: int, n_flows: int = 4) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(CouplingLayer(channels, hidden, 5, 4, gin_channels))
            self.flows.append(Flip())

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None, reverse: bool = False) -> torch.Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x = flow(x, mask, g, reverse) if isinstance(flow, CouplingLayer) else flow(x)
        return x


class MRTE(nn.Module):
    """Multi-reference timbre encoder: content attends to text, plus the timbre vector."""

    def __init__(self, content: int = 192, hidden: int = 512, n_heads: int = 4) -> None:
        super().__init__()
        self.cross_attention = RelativeAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content, hidden, 1)
        self.text_pre = nn.Conv1d(content, hidden, 1)
        self.c_post = nn.Conv1d(hidden, content, 1)

    def forward(self, ssl, ssl_mask, text, text_mask, ge) -> torch.Tensor:
        """ssl [B,C,T], text [B,C,Tp], ge [B,hidden,1] -> [B,C,T]."""
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)
        ssl_enc = self.c_pre(ssl * ssl_mask)
        text_enc = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl_enc * ssl_mask, text_enc * text_mask, attn_mask) + ssl_enc + ge
        return self.c_post(x * ssl_mask)


class _Fc(nn.Module):
    """Linear kept under `fc` (upstream LinearNorm)."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class _ConvGLU(nn.Module):
    """Residual conv + GLU (keys conv1.conv)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Module()
        self.conv1.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1.conv(x)
        return x + y[:, : self.channels] * torch.sigmoid(y[:, self.channels :])


class _StyleAttention(nn.Module):
    """Self-attention with softmax temperature sqrt(d_model) and a residual."""

    def __init__(self, n_head: int, d_model: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.d_k = d_model // n_head
        self.temperature = d_model**0.5
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h, d = self.n_head, self.d_k

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, d).permute(2, 0, 1, 3).reshape(h * b, t, d)

        q, k, v = heads(self.w_qs(x)), heads(self.w_ks(x)), heads(self.w_vs(x))
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / self.temperature, dim=2)
        out = torch.bmm(attn, v).view(h, b, t, d).permute(1, 2, 0, 3).reshape(b, t, h * d)
        return self.fc(out) + x


class StyleEncoder(nn.Module):
    """Reference encoder on a linear spectrogram -> timbre vector ge [B, out, 1]."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, kernel_size: int = 5, n_head: int = 2) -> None:
        super().__init__()
        self.spectral = nn.Sequential(_Fc(in_dim, hidden), _Mish(), nn.Identity(), _Fc(hidden, hidden), _Mish())
        self.temporal = nn.Sequential(_ConvGLU(hidden, kernel_size), _ConvGLU(hidden, kernel_size))
        self.slf_attn = _StyleAttention(n_head, hidden)
        self.fc = _Fc(hidden, out_dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec [B, in_dim, T] (all frames valid) -> [B, out_dim, 1]; the mean is taken in fp32."""
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = self.fc(self.slf_attn(x))
        dtype = x.dtype
        pooled = (x.float() / x.shape[1]).sum(dim=1).to(dtype)
        return pooled.unsqueeze(-1)


class ContentEncoder(nn.Module):
    """Semantic features + target phones + timbre -> prior mean / log-std at 50 Hz."""

    def __init__(
        self,
        out_channels: int,
        hidden: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        n_symbols: int,
        ssl_dim: int,
        mrte_hidden: int,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(ssl_dim, hidden, 1)
        self.encoder_ssl = RelEncoder(hidden, filter_channels, n_heads, n_layers // 2, kernel_size)
        self.text_embedding = nn.Embedding(n_symbols, hidden)
        self.encoder_text = RelEncoder(hidden, filter_channels, n_heads, n_layers, kernel_size)
        self.mrte = MRTE(hidden, mrte_hidden)
        self.encoder2 = RelEncoder(hidden, filter_channels, n_heads, n_layers // 2, kernel_size)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def encode(
        self, y: torch.Tensor, y_mask: torch.Tensor, text: torch.Tensor, ge: torch.Tensor,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """y [B,ssl,T50], text [B,Tp] ids, ge [B,mrte_hidden,1] -> hidden [B,H,T50] before encoder2.
        text_mask [B,1,Tp] marks real phones in padded batches (all valid when None)."""
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        if text_mask is None:
            text_mask = torch.ones(text.shape[0], 1, text.shape[1], dtype=y.dtype, device=y.device)
        t = self.text_embedding(text).transpose(1, 2)
        t = self.encoder_text(t * text_mask, text_mask)
        return self.mrte(y, y_mask, t, text_mask, ge)

    def finish(self, y: torch.Tensor, y_mask: torch.Tensor, speed: float = 1.0):
        """encoder2 + speed + projection -> (m, logs, mask), each at the (re-timed) frame rate."""
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            y_mask = F.interpolate(y_mask, size=y.shape[-1], mode="nearest")
        stats = self.proj(y) * y_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return m, logs, y_mask


class PosteriorEncoder(nn.Module):
    """Linear spectrogram -> latent z (training only; upstream `enc_q`)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, gin_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden, 1)
        self.enc = WN(hidden, 5, 1, 16, gin_channels)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None):
        h = self.enc(self.pre(x) * mask, mask, g)
        stats = self.proj(h) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
        return z, m, logs
