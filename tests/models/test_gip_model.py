"""Tests of mridip/models/gip.py: kNN graph, grouped per-frame CNNs, graph network, stages."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mridip.errors import ProtocolError, ShapeError
from mridip.models.gip import GraphImagePrior, keep_slots, knn_graph, temporal_graph

# float32 convolutions of the same weights in a different grouping/order differ by
# round-off only: ~1e-7 relative per layer, a few layers deep -> 1e-5 is ample and still
# orders of magnitude below any indexing or weight-assignment error (O(1) relative).
TOL = dict(rtol=1e-5, atol=1e-5)



def _randomise_biases(model: nn.Module) -> None:
    # the reference initialises biases to zero; random ones make the bias path testable
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "_b" in name or name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------------ graph
def test_knn_graph_on_planted_pairs_and_groups():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 32, generator=g)
    # frames (0, 4), (1, 5), (2, 6), (3, 7) are near-duplicate pairs
    desc = torch.cat([base, base + 1e-3 * torch.randn(4, 32, generator=g)])
    nn_idx = knn_graph(desc, 2)
    assert nn_idx.shape == (8, 2) and nn_idx.dtype == torch.int64
    assert torch.equal(nn_idx[:, 0], torch.arange(8))  # self first
    assert torch.equal(nn_idx[:, 1], torch.remainder(torch.arange(8) + 4, 8))
    # groups of three (frames t, t+3, t+6), exact duplicates included: self still first
    desc3 = torch.cat([base[:3], base[:3], base[:3] + 1e-3 * torch.randn(3, 32, generator=g)])
    nn3 = knn_graph(desc3, 3)
    assert torch.equal(nn3[:, 0], torch.arange(9))
    for t in range(9):
        assert set(nn3[t].tolist()) == {t % 3, t % 3 + 3, t % 3 + 6}
    with pytest.raises(ShapeError):
        knn_graph(desc, 9)


def test_model_graph_from_planted_features_uses_the_dynamic_part():
    torch.manual_seed(0)
    model = GraphImagePrior(6, (24, 24), channels=6, k=2)
    g = torch.Generator().manual_seed(1)
    static = 50.0 * torch.randn(1, 6, 24, 24, generator=g)  # a large shared part, removed by the mean
    dyn = torch.randn(3, 6, 24, 24, generator=g)
    feats = static + torch.cat([dyn, dyn + 1e-3 * torch.randn(3, 6, 24, 24, generator=g)])
    nn_idx = model.graph_from_features(feats)
    assert torch.equal(nn_idx[:, 0], torch.arange(6))
    assert torch.equal(nn_idx[:, 1], torch.tensor([3, 4, 5, 0, 1, 2]))


def test_keep_slots_moves_only_newcomers():
    old = torch.tensor([[0, 1, 2, 3], [1, 0, 2, 3]])
    new = torch.tensor([[0, 3, 1, 4], [1, 2, 3, 0]])  # row 0: 2 left, 4 came; row 1: reordered
    got = keep_slots(old, new)
    assert got.tolist() == [[0, 1, 4, 3], [1, 0, 2, 3]]


def test_temporal_graph_and_k_clamped_to_frames():
    g = temporal_graph(5, 4)
    assert g.tolist()[0] == [0, 1, 4, 2] and g.tolist()[3] == [3, 4, 2, 0]
    model = GraphImagePrior(3, (16, 16), channels=4, k=7)
    assert model.k == 3 and model.graph.shape == (3, 3)


def test_update_and_freeze_graph_are_kept_in_the_state_dict():
    torch.manual_seed(0)
    model = GraphImagePrior(6, (16, 16), channels=4, k=3)
    before = model.graph.clone()
    model.update_graph()
    ranked = model.graph_from_features(model.features())
    expected = model.graph.clone()
    # the neighbour sets of the kNN graph, self first, surviving neighbours in their old slots
    assert torch.equal(expected, keep_slots(before, ranked))
    assert [set(r) for r in expected.tolist()] == [set(r) for r in ranked.tolist()]
    assert not torch.equal(before, expected)  # random features: not the temporal start graph
    model.freeze_graph()
    with torch.no_grad():
        for p in model.backbone_parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert model.update_graph() is False and torch.equal(model.graph, expected)
    fresh = GraphImagePrior(6, (16, 16), channels=4, k=3)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.graph, expected) and bool(fresh.graph_frozen)


def test_set_graph_fixes_a_given_graph_and_refuses_malformed_ones():
    torch.manual_seed(0)
    model = GraphImagePrior(6, (16, 16), channels=4, k=3)
    given = torch.tensor([[0, 2, 4], [1, 3, 5], [2, 4, 0], [3, 5, 1], [4, 0, 2], [5, 1, 3]])
    model.set_graph(given)
    assert torch.equal(model.graph, given) and bool(model.graph_frozen)
    assert model.update_graph() is False and torch.equal(model.graph, given)
    for bad, why in ((given[:, :2], "shape"), (given.float(), "dtype"), (given.roll(1, 0), "self not first"),
                     (torch.tensor([[0, 1, 1]] + given[1:].tolist()), "repeated neighbour"),
                     (torch.tensor([[0, 1, 6]] + given[1:].tolist()), "frame out of range")):
        with pytest.raises(ShapeError, match="set_graph"):
            model.set_graph(bad)
        assert torch.equal(model.graph, given), why  # a refused graph changes nothing


# ------------------------------------------------------------- per-frame CNNs
def _frame_cnn(model: GraphImagePrior, t: int) -> nn.Sequential:
    """Frame t's CNN as a plain stack of standard layers holding copies of its weights."""
    layers: list[nn.Module] = []
    cin = model.z.shape[1]
    for layer, (w, b) in enumerate(zip(model.gen_w, model.gen_b)):
        cout = w.shape[1]
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(w[t])
            conv.bias.copy_(b[t])
        if layer == 0:
            layers.append(conv)
        else:
            layers += [nn.Upsample(size=model.generator_sizes[layer], mode="bilinear", align_corners=False),
                       conv, nn.ELU(), nn.InstanceNorm2d(cout)]
        cin = cout
    return nn.Sequential(*layers)


@pytest.mark.parametrize("shape", [(24, 24), (20, 12)])
def test_grouped_generators_equal_independent_per_frame_cnns(shape):
    torch.manual_seed(0)
    model = GraphImagePrior(4, shape, channels=6, latent_channels=3, latent_size=4)
    _randomise_biases(model)
    with torch.no_grad():
        feats = model.features()
        loop = torch.cat([_frame_cnn(model, t)(model.z) for t in range(4)])
    assert feats.shape == (4, 6, *shape)
    torch.testing.assert_close(feats, loop, **TOL)
    # the stage-1 output: each frame's own 1x1 head on its features
    model.set_output("heads")
    with torch.no_grad():
        out = model(torch.arange(4))
        heads = torch.cat([F.conv2d(loop[t : t + 1], model.head_w[t], model.head_b[t]) for t in range(4)])
    torch.testing.assert_close(out, torch.complex(heads[:, 0], heads[:, 1]), **TOL)
    assert out.dtype == torch.complex64


def test_reference_widths_at_128():
    model = GraphImagePrior(2, (128, 128))
    # reference: 8x8 input conv to 16 CH, then 16, 32, 64, 128 with 8, 4, 2, 1 CH, then 2 blocks at CH
    assert model.generator_widths == [384, 192, 96, 48, 24, 24, 24]
    assert [s[0] for s in model.generator_sizes] == [8, 16, 32, 64, 128, 128, 128]


# -------------------------------------------------------------- graph network
def test_graph_network_equals_per_node_loop():
    """The grouped node/slot convolutions compute the reference's per-node, per-slot sums."""
    torch.manual_seed(0)
    T, c = 5, 4
    model = GraphImagePrior(T, (16, 16), channels=c, k=3, res_blocks=1)
    _randomise_biases(model)
    model.update_graph()
    nn_idx = model.graph
    lay = model.layers[0]
    with torch.no_grad():
        f = model.features()
        conv = lambda x, w, b: F.conv2d(x[None], w, b, padding=1)[0]  # noqa: E731
        hid = []
        for i in range(T):
            m = torch.stack([conv(f[nn_idx[i, k]], lay.agg_w[i, k], lay.agg_b[i, k]) for k in range(3)]).mean(0)
            hid.append(F.instance_norm(F.elu(m)[None], weight=lay.agg_norm_w, bias=lay.agg_norm_b)[0])
        own = [F.instance_norm(F.elu(conv(f[i], lay.self_w[i], lay.self_b[i]))[None])[0] for i in range(T)]
        cat = [torch.cat([own[i], hid[i]]) for i in range(T)]
        outs = []
        for i in range(T):
            u = torch.stack([conv(cat[nn_idx[i, k]], lay.upd_w[i, k], lay.upd_b[i, k]) for k in range(3)])
            u = F.elu(u.mean(0))
            u = u + F.instance_norm(F.elu(conv(u, model.res_w[0][i], model.res_b[0][i]))[None])[0]
            outs.append(model.out(u[None])[0])
        ref = torch.stack(outs)
        got = model(torch.arange(T))
    torch.testing.assert_close(got, torch.complex(ref[:, 0], ref[:, 1]), **TOL)


@pytest.mark.parametrize("layers", [1, 2])
def test_subset_of_frames_equals_the_full_output(layers):
    torch.manual_seed(0)
    model = GraphImagePrior(7, (16, 16), channels=4, k=3, gnn_layers=layers)
    _randomise_biases(model)
    model.update_graph()
    with torch.no_grad():
        full = model(torch.arange(7))
        for frames in ([5, 1], [3], [6, 0, 2]):
            part = model(torch.tensor(frames))
            torch.testing.assert_close(part, full[frames], **TOL)


def test_generators_frozen_caches_features_and_stops_their_gradient():
    torch.manual_seed(0)
    model = GraphImagePrior(4, (16, 16), channels=4, k=2)
    with torch.no_grad():
        ref = model(torch.arange(4))
    with model.generators_frozen():
        assert not any(p.requires_grad for p in model.generator_parameters())
        out = model(torch.arange(4))
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        out.abs().sum().backward()
    assert all(p.requires_grad for p in model.generator_parameters())
    assert all(p.grad is None for p in model.generator_parameters())
    assert all(p.grad is not None for p in model.graph_parameters())


def test_parameter_groups_partition_the_model():
    model = GraphImagePrior(3, (16, 16), channels=4, k=2)
    gen = {id(p) for p in model.generator_parameters()}
    graph = {id(p) for p in model.graph_parameters()}
    assert not gen & graph
    assert gen | graph == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.joint_parameters()} == graph | {id(p) for p in model.backbone_parameters()}


def test_contract_and_bad_options():
    model = GraphImagePrior(3, (12, 10), channels=4, k=2, seed=3)
    assert model.num_frames == 3 and model.image_shape == (12, 10)
    out = model(torch.tensor([2]))
    assert out.shape == (1, 12, 10) and out.dtype == torch.complex64
    same = GraphImagePrior(3, (12, 10), channels=4, k=2, seed=3)
    assert torch.equal(same.z, model.z)  # z is seeded
    with pytest.raises(ProtocolError):
        GraphImagePrior(3, (12, 10), k=0)
    with pytest.raises(ProtocolError):
        GraphImagePrior(3, (12, 10), channels=1)
    with pytest.raises(ProtocolError):
        model.set_output("nodes")
    with pytest.raises(ShapeError):
        model(torch.tensor([3]))
