"""The handout's multi-head architecture: shared CNN and transformer, one head per subject.

Every model takes ``forward(X, subject=None)`` with ``X`` of shape
``(batch, n_chans, n_times)`` and returns ``(batch, n_outputs)``; baselines ignore
``subject``. The multi-head model is three swappable parts (handout section 3):

1. :class:`ChannelCNN`: the same 1-D temporal convolutions on every electrode, temporal
   pooling and a projection to ``d``, plus a learned embedding per electrode:
   ``(batch, n_chans, n_times) -> (batch, n_chans, d)``;
2. :class:`ElectrodeTransformer`: a transformer encoder over the electrode tokens,
   shared by all subjects: ``(batch, n_chans, d) -> (batch, d)``;
3. :class:`SubjectHeads`: one head per subject in a ``ModuleDict`` keyed by subject ID.
   Only the heads of subjects present in a batch are run, so the others get no
   gradient at all (selective backpropagation, handout 3.4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from eegkit._checks import check_option
from eegkit.data.channels import CATEGORIES
from eegkit.models.base import UNKNOWN_SUBJECT, EEGModel, _pool_factor
from eegkit.models.dropout import Dropout, dropout

READOUTS = ("spatial", "flatten", "summary", "mean")


class ChannelCNN(EEGModel):
    """Stage 1: per-electrode temporal CNN, ``(B, C, T) -> (B, C, d)``.

    Every electrode's time series goes through the same convolutions (filters are
    shared across electrodes); pooling then reduces time to ``n_time_bins`` bins
    (1 = the handout's plain mean over time; a few bins keep the coarse latency that
    distinguishes evoked components), and a linear layer projects to ``d``. A learned
    embedding per electrode is added so that the transformer knows which electrode a
    token came from.

    Parameters
    ----------
    n_chans, n_times, sfreq
        See :class:`EEGModel`.
    d : int, default=64
        Token size.
    n_filters : int, default=16
    kernel_seconds : float, default=0.05
        Length of the first convolution, in s.
    n_time_bins : int, default=8
    target_sfreq : float, default=250.0
        The input is averaged down to about this rate (Hz) first, which keeps the
        evoked band and divides the cost.
    dropout : float, default=0.1
    activation : {"linear", "gelu"}, default="linear"
        Nonlinearity between the convolutions. ``"linear"`` keeps the per-electrode
        stage a linear filter bank: on a single electrode the evoked response is far
        below the noise, and a nonlinearity applied before electrodes are combined
        (in the transformer) mixes noise into the signal; EEGNet and ShallowConvNet
        likewise filter linearly in time and space before their first nonlinearity.
    """

    def __init__(self, n_chans, n_times, sfreq, d=64, n_filters=16, kernel_seconds=0.05,
                 n_time_bins=8, target_sfreq=250.0, dropout=0.1, activation="linear"):
        super().__init__(n_chans, n_times, sfreq, n_outputs=d)
        pool = _pool_factor(sfreq, target_sfreq)
        rate = sfreq / pool
        kernel = max(3, int(round(kernel_seconds * rate)) | 1)  # odd, for "same" padding
        check_option("activation", activation, ("linear", "gelu"))
        self.d = d

        def act():
            return nn.GELU() if activation == "gelu" else nn.Identity()

        self.temporal = nn.Sequential(
            nn.AvgPool1d(pool),
            nn.Conv1d(1, n_filters, kernel, padding=kernel // 2),
            nn.BatchNorm1d(n_filters),
            act(),
            nn.AvgPool1d(2),  # halves the cost of the wider second layer
            nn.Conv1d(n_filters, 2 * n_filters, 5, padding=2),
            nn.BatchNorm1d(2 * n_filters),
            act(),
            nn.AdaptiveAvgPool1d(n_time_bins),
        )
        self.project = nn.Sequential(nn.Flatten(), Dropout(dropout),
                                     nn.Linear(2 * n_filters * n_time_bins, d))
        self.electrode_embedding = nn.Parameter(0.02 * torch.randn(n_chans, d))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``X`` (batch, n_chans, n_times) -> tokens (batch, n_chans, d).

        With ``activation="linear"`` the filter bank runs in closed form
        (:meth:`_features_closed_form`), about 15 times faster on CPU than layer by
        layer and equal to it within float32 rounding; with ``"gelu"`` it runs layer
        by layer (:meth:`_features_by_layers`).
        """
        self._check_input(X)
        if _is_affine_chain(self.temporal):
            features = self._features_closed_form(X)
        else:
            features = self._features_by_layers(X)
        tokens = rearrange(self.project(features), "(batch chan) d -> batch chan d",
                           batch=X.shape[0])
        return tokens + self.electrode_embedding

    def _features_by_layers(self, X: torch.Tensor) -> torch.Tensor:
        """``self.temporal`` on every electrode's series: (batch * chan, 2F, bins)."""
        return self.temporal(rearrange(X, "batch chan time -> (batch chan) 1 time"))

    def _features_closed_form(self, X: torch.Tensor) -> torch.Tensor:
        """``self.temporal`` in closed form if affine: (batch * chan, 2F * bins).

        After the first average pooling, each electrode's series ``x`` (``T1`` samples)
        goes through convolutions, batch norms and poolings: an affine map
        ``x @ A + o``. ``A`` (T1, 2F * bins) and ``o`` are found by running the layers
        on the ``T1`` unit impulses and on a zero series (a batch of T1 + 1 instead
        of batch * chan series). A batch norm in training mode needs the mean and
        variance of its input over series and time; for ``y = x @ M + m0`` these are
        exact functions of the series' mean ``mu`` and covariance ``S``: with
        ``ybar[c, t] = mu @ M[:, c, t] + m0[c, t]``, channel c has mean
        ``mean_t(ybar[c])`` and variance
        ``mean_t(M[:, c, t] @ S @ M[:, c, t] + (ybar[c, t] - mean_t(ybar[c]))^2)``.
        Running statistics are updated as :class:`torch.nn.BatchNorm1d` does. Cost:
        O(batch * chan * T1 * (T1 + 2F * bins)) for ``S`` and ``x @ A`` instead of
        the convolutions on batch * chan series and their (batch * chan, F, T1)
        activations. Autocast is off inside (float32), so bfloat16 never enters the
        variances.
        """
        first, *layers = self.temporal
        dtype = torch.promote_types(X.dtype, torch.float32)
        with torch.autocast(X.device.type, enabled=False):
            x = first(X.to(dtype))  # (batch, chan, T1): the same pooling per series
            x = rearrange(x, "batch chan time -> (batch chan) time")
            n_series, n_samples = x.shape
            # rows 0..T1-1: the linear part (no biases), row T1: the offset
            linear = torch.eye(n_samples, dtype=dtype, device=x.device).unsqueeze(1)
            offset = torch.zeros(1, 1, n_samples, dtype=dtype, device=x.device)
            moments = None
            for layer in layers:
                if isinstance(layer, nn.Conv1d):
                    linear = layer._conv_forward(linear, layer.weight, None)
                    offset = layer._conv_forward(offset, layer.weight, layer.bias)
                elif isinstance(layer, nn.BatchNorm1d):
                    batch_stats = layer.training or layer.running_mean is None
                    if moments is None and batch_stats:
                        mean = x.mean(dim=0)
                        centred = x - mean
                        moments = mean, centred.T @ centred / n_series
                    scale, shift = _batch_norm_as_affine(layer, linear, offset[0],
                                                         moments, n_series)
                    linear = linear * scale[:, None]
                    offset = offset * scale[:, None] + shift[:, None]
                else:  # pooling or identity: linear, applied to both parts
                    linear, offset = layer(linear), layer(offset)
            return torch.addmm(offset.reshape(1, -1), x, linear.reshape(n_samples, -1))


_AFFINE_LAYERS = (nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d,
                  nn.Identity)


def _is_affine_chain(layers: nn.Sequential) -> bool:
    """Whether :meth:`ChannelCNN._features_closed_form` can stand in for ``layers``."""
    first, *rest = layers
    return isinstance(first, nn.AvgPool1d) and all(
        isinstance(layer, _AFFINE_LAYERS)
        and getattr(layer, "padding_mode", "zeros") == "zeros" for layer in rest)


def _batch_norm_as_affine(
    bn: nn.BatchNorm1d,
    linear: torch.Tensor,
    offset: torch.Tensor,
    moments: tuple[torch.Tensor, torch.Tensor] | None,
    n_series: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``scale, shift`` of ``bn`` on ``y = x @ linear + offset``.

    Parameters
    ----------
    bn : nn.BatchNorm1d
        Uses batch statistics in training mode (or without running statistics) and
        updates its running statistics as :meth:`nn.BatchNorm1d.forward` does.
    linear : Tensor, shape (n_samples, n_channels, n_times)
    offset : Tensor, shape (n_channels, n_times)
    moments : (Tensor, Tensor) or None
        Mean (n_samples,) and biased covariance (n_samples, n_samples) of the series
        ``x``; needed only for batch statistics.
    n_series : int
        Series in the batch (for the unbiased running variance).
    """
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    if bn.training or bn.running_mean is None:
        mean_x, cov_x = moments
        count = n_series * linear.shape[-1]
        if bn.training and count <= 1:
            raise ValueError(f"batch norm in training mode needs more than 1 value per "
                             f"channel, got {n_series} series x {linear.shape[-1]} "
                             f"samples; use a batch of more than one trial.")
        mean_y = torch.einsum("s,sct->ct", mean_x, linear) + offset  # mean over series
        mean = mean_y.mean(dim=1)
        within = (linear * torch.einsum("rs,sct->rct", cov_x, linear)).sum(dim=0)
        var = (within + (mean_y - mean[:, None]) ** 2).mean(dim=1)  # biased, as BN
        if bn.training and bn.track_running_stats and bn.running_mean is not None:
            with torch.no_grad():
                bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), momentum)
                unbiased = var * count / (count - 1)
                bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), momentum)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


class PreNormEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer(d, n_heads, dim_feedforward, dropout, activation="gelu",
    batch_first=True, norm_first=True)``, written out so that its dropouts, on the
    attention weights too, use :func:`eegkit.models.dropout.dropout`.

    The same parameters under the same state-dict keys, and the same output in
    evaluation mode (tested against torch's layer); in training its dropout masks
    take a third of the random draws (a training step x0.74 of the time on a CPU,
    ``benchmarks/dropout_cost.py``). Input and output ``(batch, tokens, d)``.
    """

    def __init__(self, d: int, n_heads: int, dim_feedforward: int, dropout: float = 0.1):
        super().__init__()
        # Holds the projections (in_proj_weight, out_proj) under torch's keys; the
        # attention itself is computed in _attention.
        self.self_attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.n_heads = n_heads
        self.attention_dropout = dropout

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "batch token (head e) -> batch head token e", head=self.n_heads)
                   for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
        weights = dropout(weights, self.attention_dropout, self.training)
        return self.self_attn.out_proj(rearrange(weights @ v, "batch head token e -> batch token (head e)"))

    def forward(self, x: torch.Tensor, src_mask=None, src_key_padding_mask=None, is_causal=False) -> torch.Tensor:
        if src_mask is not None or src_key_padding_mask is not None or is_causal:
            raise ValueError("PreNormEncoderLayer attends to every token; masks are not supported")
        x = x + self.dropout1(self._attention(self.norm1(x)))
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))


class ElectrodeTransformer(nn.Module):
    """Stage 2: transformer encoder over electrode tokens, ``(B, C, d) -> (B, d)``.

    Parameters
    ----------
    n_chans : int
        Number of electrode tokens.
    d : int, default=64
    n_layers : int, default=2
    n_heads : int, default=4
    dropout : float, default=0.1
    readout : {"spatial", "flatten", "summary", "mean"}, default="flatten"
        How the tokens become one vector. ``"spatial"``: ``n_spatial_filters`` learned
        weightings of the electrodes (spatial filters, which evoked responses need, as
        in EEGNet's depthwise layer), then a linear map of the filtered tokens;
        ``"flatten"``: a linear map of all tokens together (a weight per electrode
        and feature: many more parameters); ``"summary"``: the output of a learned token
        prepended to the electrodes (BERT's [CLS]); ``"mean"``: the mean token.
    """

    def __init__(self, n_chans, d=64, n_layers=2, n_heads=4, dropout=0.1, readout="flatten",
                 n_spatial_filters=8):
        super().__init__()
        check_option("readout", readout, READOUTS)
        layer = PreNormEncoderLayer(d, n_heads, dim_feedforward=2 * d, dropout=dropout)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.readout = readout
        if readout == "summary":
            self.summary_token = nn.Parameter(torch.zeros(1, 1, d))
        if readout == "flatten":
            self.spatial = nn.Sequential(nn.Flatten(), Dropout(dropout), nn.Linear(n_chans * d, d))
        if readout == "spatial":
            self.spatial = nn.Sequential(
                Rearrange("batch chan d -> batch d chan"),
                nn.Linear(n_chans, n_spatial_filters, bias=False),  # filters over electrodes
                nn.Flatten(),
                Dropout(dropout),
                nn.Linear(d * n_spatial_filters, d),
            )
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.readout == "summary":
            summary = self.summary_token.expand(tokens.shape[0], -1, -1)
            return self.norm(self.encoder(torch.cat([summary, tokens], dim=1))[:, 0])
        out = self.encoder(tokens)
        return self.norm(out.mean(dim=1) if self.readout == "mean" else self.spatial(out))


class EEGEncoder(nn.Module):
    """Stages 1 and 2: ``(B, C, T) -> (B, d)``, shared by every subject and task."""

    def __init__(self, cnn: ChannelCNN, transformer: ElectrodeTransformer):
        super().__init__()
        self.cnn, self.transformer = cnn, transformer
        self.d = cnn.d

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.cnn(X))


def build_encoder(n_chans, n_times, sfreq, d=64, n_layers=2, n_heads=4, dropout=0.1,
                  readout="flatten", cnn_kwargs=None) -> EEGEncoder:
    """The shared encoder of Tasks 1 and 2B: :class:`ChannelCNN` then :class:`ElectrodeTransformer`."""
    cnn = ChannelCNN(n_chans, n_times, sfreq, d=d, dropout=dropout, **(cnn_kwargs or {}))
    return EEGEncoder(cnn, ElectrodeTransformer(n_chans, d, n_layers, n_heads, dropout, readout))


class SubjectHeads(nn.Module):
    """Stage 3: one head per subject, ``(B, d), subject -> (B, n_outputs)``.

    Parameters
    ----------
    subjects : sequence of str
        Subject IDs; ``subject`` indices passed to :meth:`forward` index this list.
    d : int
    n_outputs : int
    hidden : int, sequence of int, or None, default=None
        Widths of the hidden layers (an int: one layer); None or ``()`` gives a
        linear head.
    dropout : float, default=0.2
    shared : bool, default=False
        Add a head shared by every subject: each output is then
        ``shared(features) + own_head(features)``, the subject heads start at zero and
        learn only what differs from the shared one (a shared head plus small
        subject-specific residual heads). The shared head pools every subject's trials,
        so it is trained on 13 times more data than one subject head, and it is what a
        subject without a head gets.

    Notes
    -----
    Heads run only on the rows of their own subject, and only for subjects present in
    the batch: an absent subject's head takes no part in the graph, its gradient stays
    ``None`` and optimisers (AdamW's weight decay included) leave it bit-identical.
    A subject index of -1 (a subject with no head, e.g. held out in the cross-subject
    protocol) gets the shared head's output when there is one, else the mean of all
    heads' outputs.
    """

    def __init__(self, subjects: Sequence[str], d: int, n_outputs: int,
                 hidden: int | Sequence[int] | None = None,
                 dropout: float = 0.2, shared: bool = False):
        super().__init__()
        self.subjects = tuple(subjects)

        widths = [] if hidden is None else [hidden] if isinstance(hidden, int) else list(hidden)

        def head():
            layers: list[nn.Module] = [Dropout(dropout)]
            for width_in, width_out in zip([d, *widths], widths):
                layers += [nn.Linear(width_in, width_out), nn.GELU()]
            layers.append(nn.Linear(widths[-1] if widths else d, n_outputs))
            return nn.Sequential(*layers)

        self.heads = nn.ModuleDict({s: head() for s in self.subjects})
        self.shared = head() if shared else None
        if shared:  # residual heads start at zero: the model starts as one shared head
            for own in self.heads.values():
                nn.init.zeros_(own[-1].weight)
                nn.init.zeros_(own[-1].bias)
        self.n_outputs = n_outputs

    def forward(self, features: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        parts, where = [], []
        for index in torch.unique(subject).tolist():
            rows = torch.nonzero(subject == index).squeeze(1)
            if index == UNKNOWN_SUBJECT and self.shared is not None:
                parts.append(self.shared(features[rows]))
            elif index == UNKNOWN_SUBJECT:
                outputs = [head(features[rows]) for head in self.heads.values()]
                parts.append(torch.stack(outputs).mean(dim=0))
            elif 0 <= index < len(self.subjects):
                own = self.heads[self.subjects[index]](features[rows])
                parts.append(own if self.shared is None else own + self.shared(features[rows]))
            else:
                raise ValueError(
                    f"subject index {index} has no head; heads are 0..{len(self.subjects) - 1} or -1"
                )
            where.append(rows)
        # one loop over the subjects present, then a single scatter back to batch order
        order = torch.cat(where)
        out = torch.cat(parts)
        return out[torch.argsort(order)]


class SubjectLayer(nn.Module):
    """A learned linear remix of the electrodes per subject, ``(B, C, T) -> (B, C, T)``.

    Défossez et al. (2023)'s "subject layer": every subject's head and cap put the
    sources on the electrodes differently, so each subject gets its own ``C x C``
    matrix in front of the shared stages. Matrices start as the identity (the model
    starts as without the layer); like :class:`SubjectHeads`, only the matrices of
    subjects present in a batch take part in the graph, and a subject index of -1
    (no matrix of its own) gets the mean matrix of all subjects.

    Parameters
    ----------
    subjects : sequence of str
    n_chans : int
    """

    def __init__(self, subjects: Sequence[str], n_chans: int):
        super().__init__()
        self.subjects = tuple(subjects)
        self.weights = nn.ParameterDict({s: nn.Parameter(torch.eye(n_chans)) for s in self.subjects})

    def forward(self, X: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(X)
        for index in torch.unique(subject).tolist():
            rows = torch.nonzero(subject == index).squeeze(1)
            if index == UNKNOWN_SUBJECT:
                weight = torch.stack(list(self.weights.values())).mean(dim=0)
            elif 0 <= index < len(self.subjects):
                weight = self.weights[self.subjects[index]]
            else:
                raise ValueError(f"subject index {index} has no subject layer; "
                                 f"0..{len(self.subjects) - 1} or -1")
            out[rows] = torch.einsum("oc,bct->bot", weight.to(X.dtype), X[rows])
        return out


class MultiHeadEEGNet(EEGModel):
    """The handout's architecture: shared CNN + transformer encoder, one head per subject.

    Parameters
    ----------
    n_chans, n_times, sfreq, n_outputs
        See :class:`EEGModel`.
    subjects : sequence of str
        One head per subject ID.
    d : int, default=64
    n_layers : int, default=2
    n_heads : int, default=4
    head_hidden : int or None, default=None
    shared_head : bool, default=False
        A head shared by all subjects plus subject-specific residual heads; see
        :class:`SubjectHeads`.
    subject_layer : bool or "fixed", default=False
        A :class:`SubjectLayer` (per-subject electrode remix) before the encoder;
        ``"fixed"`` keeps its matrices as set (e.g. to each subject's Euclidean
        alignment) instead of training them.
    dropout : float, default=0.1
    readout : {"spatial", "flatten", "summary", "mean"}, default="flatten"
        See :class:`ElectrodeTransformer`.
    cnn_kwargs : dict, optional
        Extra arguments of :class:`ChannelCNN`.
    """

    def __init__(self, n_chans, n_times, sfreq, subjects: Sequence[str], n_outputs=len(CATEGORIES),
                 d=64, n_layers=2, n_heads=4, head_hidden=None, dropout=0.1, readout="flatten",
                 cnn_kwargs=None, shared_head=False, subject_layer=False):
        super().__init__(n_chans, n_times, sfreq, n_outputs)
        self.encoder = build_encoder(n_chans, n_times, sfreq, d, n_layers, n_heads, dropout, readout,
                                     cnn_kwargs)
        self.heads = SubjectHeads(subjects, d, n_outputs, hidden=head_hidden, shared=shared_head)
        check_option("subject_layer", subject_layer, (False, True, "fixed"))
        self.subject_layer = SubjectLayer(subjects, n_chans) if subject_layer else None
        if subject_layer == "fixed":
            self.subject_layer.requires_grad_(False)

    @property
    def subjects(self) -> tuple[str, ...]:
        return self.heads.subjects

    def forward(self, X: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        if subject is None:
            subject = torch.full((X.shape[0],), UNKNOWN_SUBJECT, device=X.device)
        if self.subject_layer is not None:
            self._check_input(X)
            X = self.subject_layer(X, subject)
        return self.heads(self.encoder(X), subject)
