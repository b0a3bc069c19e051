"""Graph image prior (GIP) generator for dynamic MRI.

Li, Zhang, Wang, et al., "Graph Image Prior for Unsupervised Dynamic Cardiac Cine MRI
Reconstruction", arXiv:2403.15770 (2024). The generator has two parts:

1. **Per-frame CNNs** ``g_t`` with independent weights map one fixed random input ``z``
   (``8 x 8 x 8`` in the reference) to a feature map per frame, ``F_t = g_t(z)``
   ``(CH, Y, X)``; during pretraining a per-frame ``1 x 1`` head turns ``F_t`` into an
   image directly.
2. **A graph network** over frames: a k-nearest-neighbour graph (``k = 7``, self included)
   by cosine similarity of descriptors of ``F_t - mean_s F_s``; one aggregation layer
   ``H_i = norm(ELU(mean_k W^agg_{i,k} * F_{n(i,k)}))``, one update layer
   ``U_i = ELU(mean_k W^upd_{i,k} * [norm(ELU(W^0_i * F_{n(i,k)})), H_{n(i,k)}])``,
   two residual conv blocks per frame and a shared ``1 x 1`` convolution to
   (real, imaginary). Every ``W`` is a 3x3 convolution with its own weights per node
   ``i`` and neighbour slot ``k`` (slot 0 = the node itself), as in the authors'
   released code (github.com/lizs17/GIP_Cardiac_MRI, ``model.py``).

Implementation: the ``T`` per-frame CNNs run as *one* grouped convolution
(``groups = T``) on a ``(1, T * C, h, w)`` tensor, and each graph layer's ``T x k``
node/slot convolutions as one grouped convolution on gathered neighbour features
(``groups = B``: the mean over slots of per-slot convolutions is one convolution of the
stacked neighbours, :func:`_slot_mean_conv`); there is no Python loop over frames or
neighbours. Weights of layer ``l`` are stored stacked, ``(T, C_out, C_in, 3, 3)``. Instance normalisation of
such a tensor normalises each frame's channels separately, exactly as ``T`` separate
networks would.

Frames and cost: ``G(frames)`` needs the features of the frames' neighbours (and, for
the update layer, of the neighbours' neighbours). It computes the per-frame CNNs of the
2-hop closure of ``frames`` in the graph (all ``T`` frames when ``frames`` is all of
them, the reference's full-batch setting) and the graph layers only where needed, so a
mini-batch of ``B`` frames costs between ``B`` and ``T`` per-frame CNNs.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mridip.errors import ProtocolError, ShapeError
from mridip.models.common import (
    channels_to_complex,
    check_frames,
    check_image_shape,
    check_num_frames,
    local_generator,
)

OUTPUTS = ("graph", "heads")
#: (kernel, stride) of the reference's feature-extraction network (padding 1, ReLU between)
_FEN_LAYERS = ((5, 3), (5, 3), (4, 2), (4, 2))
#: standard deviation of the reference's weight initialisation (biases start at 0)
_INIT_STD = 0.02


# ============================================================================ the graph
def knn_graph(descriptors: torch.Tensor, k: int) -> torch.Tensor:
    """k-nearest-neighbour graph of frames by cosine similarity, self first.

    Parameters
    ----------
    descriptors : torch.Tensor
        real ``(T, D)``, one descriptor per frame.
    k : int
        Neighbours per frame including the frame itself, ``1 <= k <= T``.

    Returns
    -------
    torch.Tensor
        int64 ``(T, k)``; row ``t`` lists frame ``t`` first, then its ``k - 1`` most
        similar other frames in decreasing cosine similarity.
    """
    if descriptors.ndim != 2:
        raise ShapeError(f"knn_graph: descriptors must be (T, D), got {tuple(descriptors.shape)}")
    t = descriptors.shape[0]
    if not 1 <= k <= t:
        raise ShapeError(f"knn_graph: k must be in [1, T = {t}], got {k}")
    d = F.normalize(descriptors.float(), dim=1)
    sim = d @ d.T  # (T, T) cosine similarity
    # self is always neighbour 0, even when another frame is an exact duplicate
    sim.fill_diagonal_(float("inf"))
    return torch.topk(sim, k, dim=1).indices


def keep_slots(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Reorder the rows of a new graph so that surviving neighbours keep their old slots.

    The graph network has weights per neighbour *slot*; ranking by similarity alone would
    move a neighbour to another slot (and so to other weights) whenever two similarities
    swap order. Here a neighbour present in both ``old`` and ``new`` row ``t`` stays in its
    old slot, the newcomers fill the freed slots in similarity order; slot 0 stays self.

    Parameters
    ----------
    old, new : torch.Tensor
        int64 ``(T, k)``, self first.

    Returns
    -------
    torch.Tensor
        int64 ``(T, k)``: each row holds the neighbours of ``new``'s row.
    """
    rows = []
    for o, n in zip(old.tolist(), new.tolist()):  # T rows of k ints: small, off the hot path
        keep = set(o) & set(n)
        fresh = iter([j for j in n if j not in keep])
        rows.append([j if j in keep else next(fresh) for j in o])
    return torch.tensor(rows, dtype=new.dtype, device=new.device)


def temporal_graph(num_frames: int, k: int) -> torch.Tensor:
    """Initial graph before any features exist: frame ``t`` and its circular temporal
    neighbours ``t+1, t-1, t+2, t-2, ...`` (mod ``T``), int64 ``(T, k)``."""
    offsets = [0]
    step = 1
    while len(offsets) < k:
        offsets.append(step)
        if len(offsets) < k:
            offsets.append(-step)
        step += 1
    t = torch.arange(num_frames)
    return torch.remainder(t[:, None] + torch.tensor(offsets)[None, :], num_frames)


def _stacked(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * _INIT_STD)


def _zeros(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(*shape))


def _grouped_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``G`` independent convolutions: ``x (1, G*C_in, h, w)``, ``w (G, ..., C_out, C_in, kh, kw)``,
    ``b (G, ..., C_out)`` -> ``(1, G*C_out, h, w)`` (leading weight axes flattened into ``G``)."""
    cout, cin, kh, kw = w.shape[-4:]
    w = w.reshape(-1, cout, cin, kh, kw)
    groups = w.shape[0]
    return F.conv2d(x, w.reshape(groups * cout, cin, kh, kw), b.reshape(-1), padding=kh // 2, groups=groups)


def _slot_mean_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over neighbour slots of per-slot convolutions, as one convolution per node.

    ``x (1, N*k*C_in, h, w)`` (node-major, then slot), ``w (N, k, C_out, C_in, kh, kw)``,
    ``b (N, k, C_out)`` -> ``(1, N*C_out, h, w)`` equal to
    ``mean_s conv(x[n, s], w[n, s]) + b[n, s]``. Convolution is linear, so the mean over
    slots is one convolution of the ``k * C_in`` stacked inputs with the slot weights laid
    side by side and divided by ``k`` (``groups = N``): the same arithmetic as ``N * k``
    separate convolutions, without their ``(N, k, C_out, h, w)`` output. Measured on a 2-core
    CPU at 128 x 128, 20 nodes, k = 7: the convolution alone (forward + backward) 1.5x / 1.8x
    faster with 24 / 48 input channels, a whole GIP stage-2 / stage-3 step 1.15x.
    """
    n, k, cout, cin, kh, kw = w.shape
    wc = w.permute(0, 2, 1, 3, 4, 5).reshape(n * cout, k * cin, kh, kw) / k
    return F.conv2d(x, wc, b.mean(1).reshape(-1), padding=kh // 2, groups=n)


def _elu_norm(x: torch.Tensor) -> torch.Tensor:
    # ELU then affine-free instance norm, the reference's block order; on (1, G*C, h, w)
    # instance norm normalises each (frame, channel) over space only
    return F.instance_norm(F.elu(x))


class _GraphLayer(nn.Module):
    """One aggregation + update layer with weights per node and neighbour slot."""

    def __init__(self, num_frames: int, k: int, channels: int):
        super().__init__()
        t, c = num_frames, channels
        self.agg_w, self.agg_b = _stacked(t, k, c, c, 3, 3), _zeros(t, k, c)
        # affine of the aggregation's normalisation, shared by all nodes (the reference
        # uses one BatchNorm over all nodes here; see GraphImagePrior's notes)
        self.agg_norm_w, self.agg_norm_b = nn.Parameter(torch.ones(c)), _zeros(c)
        self.self_w, self.self_b = _stacked(t, c, c, 3, 3), _zeros(t, c)
        self.upd_w, self.upd_b = _stacked(t, k, c, 2 * c, 3, 3), _zeros(t, k, c)
        self.k, self.channels = k, c

    def forward(self, x: torch.Tensor, x_set: torch.Tensor, mid: torch.Tensor, out: torch.Tensor,
                graph: torch.Tensor) -> torch.Tensor:
        """``x`` ``(n_in, C, h, w)`` features of frames ``x_set`` (sorted) -> ``(n_out, C, h, w)``
        for frames ``out``; ``mid`` (sorted) holds the neighbours of ``out``, and ``x_set``
        the neighbours of ``mid``."""
        k, c = self.k, self.channels
        h, w = x.shape[-2:]
        n_mid, n_out = mid.numel(), out.numel()
        # aggregation at the nodes `mid`: mean over slots of W_{i,k} * x_{n(i,k)}
        nbr = torch.searchsorted(x_set, graph[mid].reshape(-1))  # (n_mid * k,) rows of x
        g = x[nbr].reshape(1, n_mid * k * c, h, w)
        hid = _slot_mean_conv(g, self.agg_w[mid], self.agg_b[mid]).reshape(n_mid, c, h, w)
        hid = F.instance_norm(F.elu(hid), weight=self.agg_norm_w, bias=self.agg_norm_b)
        # the nodes' own transformed features, concatenated with their aggregates
        own = x[torch.searchsorted(x_set, mid)].reshape(1, n_mid * c, h, w)
        own = _elu_norm(_grouped_conv(own, self.self_w[mid], self.self_b[mid])).reshape(n_mid, c, h, w)
        cat = torch.cat([own, hid], dim=1)  # (n_mid, 2C, h, w)
        # update at the nodes `out`: mean over slots of W'_{i,k} * cat_{n(i,k)}
        nbr = torch.searchsorted(mid, graph[out].reshape(-1))
        g = cat[nbr].reshape(1, n_out * k * 2 * c, h, w)
        upd = _slot_mean_conv(g, self.upd_w[out], self.upd_b[out]).reshape(n_out, c, h, w)
        return F.elu(upd)


# ================================================================================ GIP
class GraphImagePrior(nn.Module):
    """Graph image prior: per-frame CNNs from one fixed input, fused by a graph network.

    ``G(frames)``: features ``F = g(z)`` ``(T', CH, Y, X)`` of the frames the graph needs
    -> graph layers -> residual blocks of ``frames`` -> ``1 x 1`` conv -> complex64
    ``(B, Y, X)``. With :meth:`set_output` ``("heads")`` (stage 1 of the schedule) the
    output is instead each frame's own ``1 x 1`` head on ``F_t``, without the graph.

    Per-frame CNN (reference widths for 128 x 128, ``CH = 24``): a 3x3 conv from ``z``
    ``(latent_channels, latent_size, latent_size)`` to ``2^n CH`` channels, then ``n``
    blocks [x2 bilinear upsampling -> 3x3 conv -> ELU -> InstanceNorm] halving the width
    down to ``CH``, then one block upsampling bilinearly to ``image_shape`` exactly and one
    block without upsampling, both at width ``CH``; ``n = floor(log2(max(Y, X) /
    latent_size))`` (4 at 128 x 128: sizes 8, 16, 32, 64, 128, as the reference).

    Graph: :attr:`graph` ``(T, k)`` int64 buffer, self first. It starts as the temporal
    neighbourhood (:func:`temporal_graph`), :meth:`update_graph` recomputes it from the
    current features (cosine kNN of descriptors of ``F_t - mean_s F_s`` from a fixed,
    seeded, random strided ReLU conv network: the reference's feature-extraction network,
    whose weights are never trained because top-k passes no gradient; neighbours that
    stay neighbours keep their slot, :func:`keep_slots`), and
    :meth:`freeze_graph` fixes it (``graph_frozen`` buffer). Both are buffers, so
    ``state_dict`` and checkpoints keep them.

    Differences from the reference code (why): the aggregation layer's normalisation is
    an instance norm per node with a shared affine instead of a BatchNorm over all nodes
    (the reference's BatchNorm switches to running statistics in eval mode, so its
    evaluated image differs from the fitted one, and it ties a frame's image to the
    mini-batch); a recomputed graph keeps surviving neighbours in their slots (the
    reference re-ranks them, so a swap of two similarities swaps their weights and makes
    the loss jump); weights start from ``N(0, 0.02^2)`` as in the reference.

    Parameters
    ----------
    num_frames : int
        ``T``.
    image_shape : (int, int)
        ``(Y, X)``.
    channels : int
        ``CH``, width of the features and of the graph network (reference: 24).
    latent_channels, latent_size : int
        Shape of the fixed input ``z`` ``(1, latent_channels, latent_size, latent_size)``
        (reference: 8, 8).
    k : int
        Neighbours per frame including itself (reference: 7); ``min(k, T)`` is used.
    gnn_layers : int
        Aggregation + update layers (reference: 1).
    res_blocks : int
        Residual [3x3 conv -> ELU -> InstanceNorm] blocks per frame after the graph
        layers (reference: 2).
    seed : int
        Seed of ``z`` and of the descriptor network; weights follow the global RNG.

    Buffers: ``z`` ``(1, latent_channels, s, s)``, ``graph`` ``(T, k)``,
    ``graph_frozen`` (bool), ``fen_0 ...`` (descriptor network weights).
    """

    def __init__(
        self,
        num_frames: int,
        image_shape: tuple[int, int],
        *,
        channels: int = 24,
        latent_channels: int = 8,
        latent_size: int = 8,
        k: int = 7,
        gnn_layers: int = 1,
        res_blocks: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        for name, value, lo in (("channels", channels, 2), ("latent_channels", latent_channels, 1),
                                ("latent_size", latent_size, 1), ("k", k, 1), ("gnn_layers", gnn_layers, 1),
                                ("res_blocks", res_blocks, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ProtocolError(f"model.{name} must be an int >= {lo}; got {value!r}")
        gen = local_generator(seed)  # also validates seed
        t, c = self.num_frames, int(channels)
        y, x = self.image_shape
        self.channels, self.k = c, min(int(k), t)
        self.seed = seed
        self._output = "graph"
        self._cached: torch.Tensor | None = None

        # ---- per-frame CNNs, stacked over frames
        n = max(0, int(math.floor(math.log2(max(y, x) / latent_size)))) if max(y, x) >= latent_size else 0
        widths = [c * 2 ** (n - l) for l in range(n + 1)] + [c, c]
        sizes = [(latent_size * 2**l,) * 2 for l in range(n + 1)] + [(y, x), (y, x)]
        #: widths and spatial sizes of the per-frame CNN's layers (layer 0: the input conv)
        self.generator_widths, self.generator_sizes = widths, sizes
        self.register_buffer("z", torch.randn(1, latent_channels, latent_size, latent_size, generator=gen))
        cin = latent_channels
        self.gen_w, self.gen_b = nn.ParameterList(), nn.ParameterList()
        for wdt in widths:
            self.gen_w.append(_stacked(t, wdt, cin, 3, 3))
            self.gen_b.append(_zeros(t, wdt))
            cin = wdt
        self.head_w, self.head_b = _stacked(t, 2, c, 1, 1), _zeros(t, 2)

        # ---- graph network
        self.layers = nn.ModuleList([_GraphLayer(t, self.k, c) for _ in range(gnn_layers)])
        self.res_w = nn.ParameterList([_stacked(t, c, c, 3, 3) for _ in range(res_blocks)])
        self.res_b = nn.ParameterList([_zeros(t, c) for _ in range(res_blocks)])
        self.out = nn.Conv2d(c, 2, 1)
        with torch.no_grad():
            self.out.weight.normal_(0.0, _INIT_STD)
            self.out.bias.zero_()

        # ---- graph state and the fixed descriptor network
        self.register_buffer("graph", temporal_graph(t, self.k))
        self.register_buffer("graph_frozen", torch.tensor(False))
        self._fen: list[tuple[str, int]] = []
        cin, hy, hx = c, y, x
        for i, (ks, st) in enumerate(_FEN_LAYERS):
            hy2, hx2 = (hy + 2 - ks) // st + 1, (hx + 2 - ks) // st + 1
            if min(hy2, hx2) < 2:  # small images: fewer strided layers (none below 8 x 8)
                break
            cout = max(1, c // 2)
            wt = torch.randn(cout, cin, ks, ks, generator=gen) / math.sqrt(cin * ks * ks)
            self.register_buffer(f"fen_{i}", wt)
            self._fen.append((f"fen_{i}", st))
            cin, hy, hx = cout, hy2, hx2

    # ------------------------------------------------------------------ stages
    def set_output(self, output: str) -> None:
        """``"graph"`` (default: the full GIP) or ``"heads"`` (per-frame heads, stage 1)."""
        if output not in OUTPUTS:
            raise ProtocolError(f"GraphImagePrior output must be one of {', '.join(OUTPUTS)}; got {output!r}")
        self._output = output

    @property
    def output(self) -> str:
        return self._output

    def generator_parameters(self) -> list[nn.Parameter]:
        """Per-frame CNNs and their heads: what stage 1 fits."""
        return [*self.gen_w, *self.gen_b, self.head_w, self.head_b]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Per-frame CNNs without the heads (fitted jointly with the graph in stage 3)."""
        return [*self.gen_w, *self.gen_b]

    def graph_parameters(self) -> list[nn.Parameter]:
        """Graph layers, residual blocks and output conv: what stage 2 fits."""
        return [*self.layers.parameters(), *self.res_w, *self.res_b, *self.out.parameters()]

    def joint_parameters(self) -> list[nn.Parameter]:
        """Per-frame CNNs and graph network (stage 3 and ADMM)."""
        return self.backbone_parameters() + self.graph_parameters()

    @contextmanager
    def generators_frozen(self) -> Iterator[None]:
        """Freeze the per-frame CNNs: their features are computed once and reused.

        Inside the block the backbone's ``requires_grad`` is off and ``G(frames)`` reads
        the cached features, so a stage-2 step costs the graph network only.
        """
        params = self.generator_parameters()
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                self._cached = self.features()
            yield
        finally:
            self._cached = None
            for p, f in zip(params, flags):
                p.requires_grad_(f)

    # ------------------------------------------------------------------ features
    def features(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame CNN features of frames ``idx`` (``(B,)``; None: all), ``(B, CH, Y, X)``."""
        if self._cached is not None:
            return self._cached if idx is None else self._cached[idx]
        ws = list(self.gen_w) if idx is None else [w[idx] for w in self.gen_w]
        bs = list(self.gen_b) if idx is None else [b[idx] for b in self.gen_b]
        nb = self.num_frames if idx is None else idx.numel()
        h = self.z.expand(nb, -1, -1, -1).reshape(1, nb * self.z.shape[1], *self.z.shape[-2:])
        for layer, (w, b) in enumerate(zip(ws, bs)):
            size = self.generator_sizes[layer]
            if layer > 0 and tuple(h.shape[-2:]) != size:
                h = F.interpolate(h, size=size, mode="bilinear", align_corners=False)
            h = _grouped_conv(h, w, b)
            if layer > 0:  # the input conv has no activation or norm (reference)
                h = _elu_norm(h)
        return h.reshape(nb, self.channels, *self.image_shape)

    def descriptors(self, features: torch.Tensor) -> torch.Tensor:
        """Graph descriptors ``(T, D)`` of features ``(T, CH, Y, X)``: the fixed random
        strided ReLU network applied to ``F_t - mean_s F_s`` (temporal mean removed, so the
        similarity measures the dynamic part)."""
        h = features - features.mean(0, keepdim=True)
        for n, (name, stride) in enumerate(self._fen):
            if n:
                h = F.relu(h)
            h = F.conv2d(h, getattr(self, name).to(h.dtype), stride=stride, padding=1)
        return h.reshape(h.shape[0], -1)

    def graph_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """kNN graph ``(T, k)`` of features ``(T, CH, Y, X)`` (see :func:`knn_graph`)."""
        if features.ndim != 4 or features.shape[0] != self.num_frames:
            raise ShapeError(f"features must be (T={self.num_frames}, CH, Y, X); got {tuple(features.shape)}")
        return knn_graph(self.descriptors(features.float()), self.k)

    @torch.no_grad()
    def update_graph(self) -> bool:
        """Recompute :attr:`graph` from the current features (a no-op once frozen).

        Costs one forward pass of the per-frame CNNs (none while generators are frozen).
        Returns True if the graph changed.
        """
        if bool(self.graph_frozen):
            return False
        new = keep_slots(self.graph, self.graph_from_features(self.features()).to(self.graph.device))
        changed = not torch.equal(new, self.graph)
        # a new tensor, never an in-place write: a forward pass that already gathered with
        # the old graph keeps its indices for the backward pass
        self.graph = new
        return changed

    def freeze_graph(self) -> None:
        """Fix :attr:`graph`; later :meth:`update_graph` calls leave it unchanged."""
        self.graph_frozen = torch.tensor(True, device=self.graph.device)

    @torch.no_grad()
    def set_graph(self, graph: torch.Tensor) -> None:
        """Use a graph built elsewhere (e.g. from navigator frames) and freeze it.

        ``graph`` int64 ``(T, k)``: row ``t`` lists frame ``t`` first, then ``k - 1``
        distinct other frames (as :func:`knn_graph` returns). Raises ShapeError otherwise.
        """
        g = torch.as_tensor(graph)
        t = self.num_frames
        if tuple(g.shape) != (t, self.k) or g.dtype not in (torch.int64, torch.int32):
            raise ShapeError(f"set_graph: graph must be an integer tensor (T, k) = {(t, self.k)}, "
                             f"got {tuple(g.shape)} {g.dtype}")
        g = g.long().cpu()
        rows_ok = all(r[0] == i and len(set(r)) == self.k and min(r) >= 0 and max(r) < t
                      for i, r in enumerate(g.tolist()))
        if not rows_ok:
            raise ShapeError("set_graph: every row t must start with t and list k distinct frames in [0, T)")
        self.graph = g.to(self.graph.device)
        self.freeze_graph()

    # ------------------------------------------------------------------ forward
    def _closure(self, nodes: torch.Tensor) -> torch.Tensor:
        return torch.unique(self.graph[nodes].reshape(-1))  # sorted, contains `nodes`

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Images of ``frames`` ``(B,)``: complex64 ``(B, Y, X)``."""
        frames = check_frames(frames, self.num_frames, self.z.device)
        y, x = self.image_shape
        b = frames.numel()
        if self._output == "heads":
            feats = self.features(frames).reshape(1, b * self.channels, y, x)
            out = _grouped_conv(feats, self.head_w[frames], self.head_b[frames]).reshape(b, 2, y, x)
            return channels_to_complex(out)
        # node sets from the output backwards: layer l maps x over sets[l] to outputs over
        # sets[l + 1] through the neighbours mids[l] of sets[l + 1]
        sets = [frames]
        mids = []
        for _ in self.layers:
            mids.insert(0, self._closure(sets[0]))
            sets.insert(0, self._closure(mids[0]))
        if sets[0].numel() == self.num_frames:
            h = self.features()  # all frames: one grouped conv without weight gathering
            sets[0] = torch.arange(self.num_frames, device=frames.device)
        else:
            h = self.features(sets[0])
        for layer, (layer_in, mid, layer_out) in enumerate(zip(sets[:-1], mids, sets[1:])):
            h = self.layers[layer](h, layer_in, mid, layer_out, self.graph)
        h = h.reshape(1, b * self.channels, y, x)
        for w, bias in zip(self.res_w, self.res_b):
            h = h + _elu_norm(_grouped_conv(h, w[frames], bias[frames]))
        out = self.out(h.reshape(b, self.channels, y, x))  # (B, 2, Y, X)
        return channels_to_complex(out)
